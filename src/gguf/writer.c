/*
 * writer.c - GGUF version 3 writer (see writer.h; format: ggml-org/ggml
 * docs/gguf.md).
 *
 * Metadata entries are encoded as they are added, into one byte buffer, in
 * the exact on-disk form (u64 key length, key, u32 type, value). Tensors are
 * kept as a list with a private copy of their data. The header, the tensor
 * table and the data offsets are produced when the file is written: data
 * starts at the header size rounded up to the alignment, and each tensor's
 * data is padded to the alignment, as ggml's gguf_write and gguf-py do.
 */
#include "gguf/writer.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

struct wtensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t n_bytes;
    uint8_t *data; /* NULL: zeros */
};

struct gguf_writer {
    sbuf kv; /* encoded metadata entries */
    uint64_t n_kv;
    char **keys;
    uint64_t keys_cap;
    struct wtensor *t;
    uint64_t n_t, t_cap;
    uint32_t alignment;
};

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int app_u32(sbuf *b, uint32_t v)
{
    uint8_t x[4];
    put_u32(x, v);
    return sbuf_append(b, x, 4);
}

static int app_u64(sbuf *b, uint64_t v)
{
    uint8_t x[8];
    put_u64(x, v);
    return sbuf_append(b, x, 8);
}

static int app_str(sbuf *b, const char *s, size_t n)
{
    app_u64(b, n);
    return sbuf_append(b, s, n);
}

static uint32_t scalar_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VAL_UINT8:
    case GGUF_VAL_INT8:
    case GGUF_VAL_BOOL:
        return 1;
    case GGUF_VAL_UINT16:
    case GGUF_VAL_INT16:
        return 2;
    case GGUF_VAL_UINT32:
    case GGUF_VAL_INT32:
    case GGUF_VAL_FLOAT32:
        return 4;
    case GGUF_VAL_UINT64:
    case GGUF_VAL_INT64:
    case GGUF_VAL_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* Appends one native value of type t from src, little-endian. */
static int app_value(sbuf *b, enum gguf_vtype t, const uint8_t *src)
{
    uint32_t n = scalar_size(t);
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    uint8_t x[8];
    switch (n) {
    case 1:
        x[0] = t == GGUF_VAL_BOOL ? (src[0] != 0) : src[0];
        break;
    case 2:
        memcpy(&v16, src, 2);
        x[0] = (uint8_t)v16;
        x[1] = (uint8_t)(v16 >> 8);
        break;
    case 4:
        memcpy(&v32, src, 4);
        put_u32(x, v32);
        break;
    default:
        memcpy(&v64, src, 8);
        put_u64(x, v64);
        break;
    }
    return sbuf_append(b, x, n);
}

int gguf_writer_new(gguf_writer **out)
{
    gguf_writer *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return 0;
}

void gguf_writer_free(gguf_writer *w)
{
    if (w == NULL)
        return;
    sbuf_free(&w->kv);
    for (uint64_t i = 0; i < w->n_kv; i++)
        mem_free(w->keys[i]);
    mem_free(w->keys);
    for (uint64_t i = 0; i < w->n_t; i++) {
        mem_free(w->t[i].name);
        mem_free(w->t[i].data);
    }
    mem_free(w->t);
    mem_free(w);
}

/* Registers key (unique, 1..65535 bytes) and encodes its name and type. */
static int begin_kv(gguf_writer *w, const char *key, enum gguf_vtype type)
{
    size_t n = strlen(key);
    if (n == 0 || n > GGUF_MAX_KEY_LEN)
        return GENAI_EBAD_ARG;
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return GENAI_EBAD_ARG;
    if (sbuf_error(&w->kv) < 0)
        return -ENOMEM;
    if (w->n_kv == w->keys_cap) {
        uint64_t cap = w->keys_cap ? w->keys_cap * 2 : 16;
        char **k = mem_reallocarray(w->keys, (size_t)cap, sizeof(*k));
        if (k == NULL)
            return -ENOMEM;
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = mem_strdup(key);
    if (copy == NULL)
        return -ENOMEM;
    w->keys[w->n_kv++] = copy;
    app_str(&w->kv, key, n);
    return app_u32(&w->kv, (uint32_t)type);
}

int gguf_writer_add_scalar(gguf_writer *w, const char *key, enum gguf_vtype type, const void *value)
{
    if (scalar_size(type) == 0)
        return GENAI_EBAD_ARG;
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a;
        if (type != GGUF_VAL_UINT32)
            return GENAI_EBAD_ARG;
        memcpy(&a, value, sizeof(a));
        if (a == 0 || (a & (a - 1)) != 0)
            return GENAI_EBAD_ARG;
        int rc = begin_kv(w, key, type);
        if (rc < 0)
            return rc;
        w->alignment = a;
        return app_value(&w->kv, type, value);
    }
    int rc = begin_kv(w, key, type);
    if (rc < 0)
        return rc;
    return app_value(&w->kv, type, value);
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return gguf_writer_add_scalar(w, key, GGUF_VAL_UINT32, &v);
}

int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v)
{
    return gguf_writer_add_scalar(w, key, GGUF_VAL_INT32, &v);
}

int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return gguf_writer_add_scalar(w, key, GGUF_VAL_UINT64, &v);
}

int gguf_writer_add_f32(gguf_writer *w, const char *key, float v)
{
    return gguf_writer_add_scalar(w, key, GGUF_VAL_FLOAT32, &v);
}

int gguf_writer_add_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return gguf_writer_add_scalar(w, key, GGUF_VAL_BOOL, &b);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v)
{
    int rc = begin_kv(w, key, GGUF_VAL_STRING);
    if (rc < 0)
        return rc;
    return app_str(&w->kv, v, strlen(v));
}

int gguf_writer_add_array(gguf_writer *w, const char *key, enum gguf_vtype elem, const void *values,
                          uint64_t n)
{
    uint32_t es = scalar_size(elem);
    if (es == 0 || (values == NULL && n > 0))
        return GENAI_EBAD_ARG;
    int rc = begin_kv(w, key, GGUF_VAL_ARRAY);
    if (rc < 0)
        return rc;
    app_u32(&w->kv, (uint32_t)elem);
    app_u64(&w->kv, n);
    const uint8_t *src = values;
    for (uint64_t i = 0; i < n; i++)
        app_value(&w->kv, elem, src + i * es);
    return sbuf_error(&w->kv);
}

int gguf_writer_add_str_array(gguf_writer *w, const char *key, const char *const *strs, uint64_t n)
{
    if (strs == NULL && n > 0)
        return GENAI_EBAD_ARG;
    int rc = begin_kv(w, key, GGUF_VAL_ARRAY);
    if (rc < 0)
        return rc;
    app_u32(&w->kv, GGUF_VAL_STRING);
    app_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++)
        app_str(&w->kv, strs[i], strlen(strs[i]));
    return sbuf_error(&w->kv);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data)
{
    uint32_t be, bb;
    size_t nlen = strlen(name);
    if (nlen > GGUF_MAX_TENSOR_NAME || n_dims == 0 || n_dims > GGUF_MAX_DIMS ||
        gguf_dtype_info(type, &be, &bb) < 0 || ne[0] % be != 0)
        return GENAI_EBAD_ARG;
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return GENAI_EBAD_ARG;
    struct wtensor t;
    memset(&t, 0, sizeof(t));
    t.type = type;
    t.n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    uint64_t bytes = t.ne[0] / be;
    int ovf = __builtin_mul_overflow(bytes, (uint64_t)bb, &bytes);
    for (uint32_t d = 1; d < GGUF_MAX_DIMS; d++)
        ovf |= __builtin_mul_overflow(bytes, t.ne[d], &bytes);
    if (ovf || bytes > (uint64_t)INT64_MAX)
        return GENAI_EBAD_ARG;
    t.n_bytes = bytes;
    if (w->n_t == w->t_cap) {
        uint64_t cap = w->t_cap ? w->t_cap * 2 : 16;
        struct wtensor *nt = mem_reallocarray(w->t, (size_t)cap, sizeof(*nt));
        if (nt == NULL)
            return -ENOMEM;
        w->t = nt;
        w->t_cap = cap;
    }
    t.name = mem_strdup(name);
    if (t.name == NULL)
        return -ENOMEM;
    if (data != NULL) {
        t.data = mem_alloc((size_t)bytes);
        if (t.data == NULL) {
            mem_free(t.name);
            return -ENOMEM;
        }
        memcpy(t.data, data, (size_t)bytes);
    }
    w->t[w->n_t++] = t;
    return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static uint64_t header_len(const gguf_writer *w)
{
    uint64_t n = 24 + w->kv.len;
    for (uint64_t i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return n;
}

uint64_t gguf_writer_data_offset(const gguf_writer *w)
{
    return align_up(header_len(w), w->alignment);
}

uint64_t gguf_writer_size(const gguf_writer *w)
{
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++)
        off = align_up(off + w->t[i].n_bytes, w->alignment);
    return gguf_writer_data_offset(w) + off;
}

/* Header, metadata, tensor table and padding up to the data section. */
static int build_header(const gguf_writer *w, sbuf *h)
{
    if (sbuf_error(&w->kv) < 0)
        return -ENOMEM;
    sbuf_append(h, "GGUF", 4);
    app_u32(h, 3);
    app_u64(h, w->n_t);
    app_u64(h, w->n_kv);
    sbuf_append(h, w->kv.data, w->kv.len);
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        app_str(h, t->name, strlen(t->name));
        app_u32(h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            app_u64(h, t->ne[d]);
        app_u32(h, t->type);
        app_u64(h, off);
        off = align_up(off + t->n_bytes, w->alignment);
    }
    static const uint8_t zeros[256];
    uint64_t pad = align_up(h->len, w->alignment) - h->len;
    while (pad > 0) {
        uint64_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
        sbuf_append(h, zeros, (size_t)n);
        pad -= n;
    }
    return sbuf_error(h);
}

int gguf_writer_to_mem(const gguf_writer *w, uint8_t **out, size_t *len, genai_error *err)
{
    sbuf h = SBUF_INIT;
    int rc = build_header(w, &h);
    if (rc < 0) {
        sbuf_free(&h);
        return err_set(err, rc, "out of memory building the GGUF header");
    }
    uint64_t total = gguf_writer_size(w);
    uint8_t *buf = mem_calloc(1, (size_t)total);
    if (buf == NULL) {
        sbuf_free(&h);
        return err_set(err, -ENOMEM, "out of memory for a %" PRIu64 "-byte GGUF image", total);
    }
    memcpy(buf, h.data, h.len);
    uint64_t off = h.len;
    for (uint64_t i = 0; i < w->n_t; i++) {
        if (w->t[i].data != NULL)
            memcpy(buf + off, w->t[i].data, (size_t)w->t[i].n_bytes);
        off = align_up(off + w->t[i].n_bytes, w->alignment);
    }
    sbuf_free(&h);
    *out = buf;
    *len = (size_t)total;
    return 0;
}

static int write_all(int fd, const void *buf, size_t n, uint64_t at)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)at);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
        at += (uint64_t)k;
    }
    return 0;
}

int gguf_writer_write(const gguf_writer *w, const char *path, genai_error *err)
{
    sbuf h = SBUF_INIT;
    int rc = build_header(w, &h);
    if (rc < 0) {
        sbuf_free(&h);
        return err_set(err, rc, "out of memory building the GGUF header");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = err_errno(err, errno, "%s", path);
        sbuf_free(&h);
        return rc;
    }
    rc = write_all(fd, h.data, h.len, 0);
    uint64_t off = h.len;
    for (uint64_t i = 0; rc == 0 && i < w->n_t; i++) {
        if (w->t[i].data != NULL)
            rc = write_all(fd, w->t[i].data, (size_t)w->t[i].n_bytes, off);
        off = align_up(off + w->t[i].n_bytes, w->alignment);
    }
    /* Extends the file over trailing padding and data-less tensors (holes). */
    if (rc == 0 && ftruncate(fd, (off_t)off) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    sbuf_free(&h);
    if (rc < 0) {
        unlink(path);
        return err_errno(err, -rc, "writing %s", path);
    }
    return 0;
}
