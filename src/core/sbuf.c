/*
 * sbuf.c - growable NUL-terminated buffer (see sbuf.h).
 */
#include "core/sbuf.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int sbuf_reserve(sbuf *b, size_t extra)
{
    if (b->failed)
        return -ENOMEM;
    if (extra > (size_t)-1 / 2 - b->len - 1) {
        b->failed = 1;
        return -ENOMEM;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = mem_realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int sbuf_append(sbuf *b, const void *bytes, size_t n)
{
    int rc = sbuf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sbuf_puts(sbuf *b, const char *s)
{
    return sbuf_append(b, s, strlen(s));
}

int sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return -EINVAL;
    }
    int rc = sbuf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *sbuf_str(const sbuf *b)
{
    return b->data != NULL ? b->data : "";
}

int sbuf_error(const sbuf *b)
{
    return b->failed ? -ENOMEM : 0;
}

void sbuf_reset(sbuf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *sbuf_take(sbuf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
    return p;
}

void sbuf_free(sbuf *b)
{
    if (b == NULL)
        return;
    mem_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}
