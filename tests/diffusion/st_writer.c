/*
 * st_writer.c - safetensors writer for tests and fixtures (see st_writer.h).
 * Format: huggingface/safetensors README, "Format".
 */
#include "st_writer.h"

#include "core/alloc.h"
#include "diffusion/safetensors.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st_writer {
    json_t *root; /* tensors and __metadata__ */
    json_t *meta; /* NULL until the first stw_meta */
    uint64_t data_len;
};

st_writer *stw_new(void)
{
    st_writer *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    if ((w->root = json_object()) == NULL) {
        mem_free(w);
        return NULL;
    }
    return w;
}

void stw_free(st_writer *w)
{
    if (w == NULL)
        return;
    json_decref(w->root);
    mem_free(w);
}

int stw_meta(st_writer *w, const char *key, const char *value)
{
    if (w->meta == NULL) {
        if ((w->meta = json_object()) == NULL ||
            json_object_set_new(w->root, "__metadata__", w->meta) != 0)
            return -1;
    }
    return json_object_set_new(w->meta, key, json_string(value)) == 0 ? 0 : -1;
}

int stw_tensor(st_writer *w, const char *name, const char *dtype, uint32_t n_dims,
               const uint64_t *shape)
{
    enum dm_st_dtype t;
    if (dm_st_dtype_parse(dtype, &t) != 0 || json_object_get(w->root, name) != NULL)
        return -1;
    uint64_t n = 1;
    json_t *js = json_array();
    if (js == NULL)
        return -1;
    for (uint32_t i = 0; i < n_dims; i++) {
        n *= shape[i];
        json_array_append_new(js, json_integer((json_int_t)shape[i]));
    }
    uint64_t bytes = n * dm_st_dtype_bits(t) / 8;
    json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype, "shape", js, "data_offsets",
                          (json_int_t)w->data_len, (json_int_t)(w->data_len + bytes));
    if (e == NULL || json_object_set_new(w->root, name, e) != 0)
        return -1;
    w->data_len += bytes;
    return 0;
}

/* The padded header text and its length. */
static char *header(const st_writer *w, size_t *len)
{
    char *text = json_dumps(w->root, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *p = mem_alloc(padded + 1);
    if (p != NULL) {
        memcpy(p, text, n);
        memset(p + n, ' ', padded - n);
        p[padded] = '\0';
        *len = padded;
    }
    free(text); /* jansson's allocation */
    return p;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int stw_write(const st_writer *w, const char *path)
{
    size_t hl;
    char *h = header(w, &hl);
    if (h == NULL)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = -1;
    if (fd >= 0) {
        uint8_t len[8];
        put_le64(len, hl);
        if (write(fd, len, 8) == 8 && write(fd, h, hl) == (ssize_t)hl &&
            ftruncate(fd, (off_t)(8 + hl + w->data_len)) == 0)
            rc = 0;
        if (close(fd) != 0)
            rc = -1;
    }
    mem_free(h);
    if (rc != 0)
        unlink(path);
    return rc;
}

uint8_t *stw_to_mem(const st_writer *w, size_t *len)
{
    size_t hl;
    char *h = header(w, &hl);
    if (h == NULL)
        return NULL;
    uint8_t *p = mem_calloc(1, 8 + hl + w->data_len);
    if (p != NULL) {
        put_le64(p, hl);
        memcpy(p + 8, h, hl);
        *len = 8 + hl + w->data_len;
    }
    mem_free(h);
    return p;
}

uint8_t *st_raw(const char *hdr, uint64_t declared_len, size_t data_len, size_t *len)
{
    size_t hl = strlen(hdr);
    uint8_t *p = mem_calloc(1, 8 + hl + data_len);
    if (p == NULL)
        return NULL;
    put_le64(p, declared_len == UINT64_MAX ? hl : declared_len);
    memcpy(p + 8, hdr, hl);
    *len = 8 + hl + data_len;
    return p;
}
