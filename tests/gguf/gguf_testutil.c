/*
 * gguf_testutil.c - see gguf_testutil.h.
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"

#include <string.h>

void tb_bytes(tb *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = mem_realloc(b->p, cap);
        assert_non_null(q);
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void tb_u32(tb *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    tb_bytes(b, x, 4);
}

void tb_u64(tb *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    tb_bytes(b, x, 8);
}

void tb_str(tb *b, const char *s)
{
    tb_u64(b, strlen(s));
    tb_bytes(b, s, strlen(s));
}

void tb_header(tb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    tb_bytes(b, "GGUF", 4);
    tb_u32(b, version);
    tb_u64(b, n_tensors);
    tb_u64(b, n_kv);
}

void tb_kv_u32(tb *b, const char *key, uint32_t v)
{
    tb_str(b, key);
    tb_u32(b, 4);
    tb_u32(b, v);
}

void tb_kv_str(tb *b, const char *key, const char *v)
{
    tb_str(b, key);
    tb_u32(b, 8);
    tb_str(b, v);
}

void tb_tensor(tb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
               uint64_t offset)
{
    tb_str(b, name);
    tb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        tb_u64(b, ne[d]);
    tb_u32(b, type);
    tb_u64(b, offset);
}

void tb_zeros(tb *b, size_t n)
{
    static const uint8_t z[64];
    while (n > 0) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        tb_bytes(b, z, k);
        n -= k;
    }
}

void tb_pad(tb *b, size_t align)
{
    tb_zeros(b, (align - b->len % align) % align);
}

void tb_free(tb *b)
{
    mem_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
