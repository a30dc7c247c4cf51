/*
 * gguf.c - the bounded GGUF reader (see gguf.h; format: ggml-org/ggml
 * docs/gguf.md, versions 2 and 3).
 *
 * Layout, all little-endian:
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x { string key, u32 value_type, value }
 *       string = u64 length + bytes; array = u32 element_type, u64 count, elements
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment (default 32), then the tensor data.
 *
 * How it reads: a cursor (off) walks the file; before each field it asks
 * rd_need() for the bytes, which grows a window holding file bytes
 * [0, meta_len) by pread (or memcpy for buffers), doubling up to
 * GGUF_MAX_META_BYTES, so only the header region is ever read. During the walk
 * every string is recorded as an offset (the window may move when it grows);
 * fixup() turns offsets into pointers once the window is final. Then the hash
 * indexes are built (duplicate keys or tensor names are errors) and the tensor
 * table is checked against the alignment and the file size.
 */
#include "gguf/gguf.h"

#include "gguf/gguf_int.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* First window: enough for the header of a model without a large vocabulary. */
#define WINDOW_MIN ((uint64_t)64 << 10)
#define WINDOW_STEP ((uint64_t)1 << 20)

/* Smallest encodings, used to bound the declared counts by the bytes present:
 * a KV is a key length (8), a type (4) and at least one value byte; a tensor
 * row is a name length (8), n_dims (4), a type (4) and an offset (8). */
#define KV_MIN_BYTES 13u
#define TENSOR_MIN_BYTES 24u

struct gguf_file {
    uint8_t *meta; /* file bytes [0, meta_len) */
    uint64_t meta_len;
    uint32_t version;
    uint32_t alignment;
    uint64_t file_size;
    uint64_t data_offset;
    uint64_t tensor_bytes;
    gguf_kv *kv;
    uint64_t n_kv, kv_cap;
    gguf_tensor *tensors;
    uint64_t n_tensors, tensor_cap;
    uint32_t *kv_index; /* open addressing: entry index + 1, 0 = empty */
    uint32_t *t_index;
    uint64_t kv_index_cap, t_index_cap;
};

struct rd {
    gguf_file *f;
    int fd;             /* -1 when reading from mem */
    const uint8_t *mem; /* the source buffer when fd < 0 */
    uint64_t off;       /* cursor: next byte to read */
    genai_error *err;
};

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Size in bytes of a fixed-size value type; 0 for string, array, unknown. */
static uint32_t vtype_size(uint32_t t)
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

/* Reads file bytes [f->meta_len, want) into the window, growing it. */
static int rd_fill(struct rd *r, uint64_t want)
{
    gguf_file *f = r->f;
    uint64_t limit = f->file_size < GGUF_MAX_META_BYTES ? f->file_size : GGUF_MAX_META_BYTES;
    /* Double up to WINDOW_STEP, then grow by WINDOW_STEP: the read past the
     * header end stays under one step (large blocks are mremap-ed, so many
     * growth steps cost no copies). */
    uint64_t len = f->meta_len < WINDOW_STEP ? f->meta_len * 2 : f->meta_len + WINDOW_STEP;
    if (len < WINDOW_MIN)
        len = WINDOW_MIN;
    if (len < want)
        len = want;
    if (len > limit)
        len = limit;
    uint8_t *grown = mem_realloc(f->meta, (size_t)len);
    if (grown == NULL)
        return err_set(r->err, -ENOMEM,
                       "out of memory growing the header window to %" PRIu64 " bytes", len);
    f->meta = grown;
    if (r->fd < 0) {
        memcpy(f->meta + f->meta_len, r->mem + f->meta_len, (size_t)(len - f->meta_len));
        f->meta_len = len;
        return 0;
    }
    while (f->meta_len < len) {
        ssize_t n =
            pread(r->fd, f->meta + f->meta_len, (size_t)(len - f->meta_len), (off_t)f->meta_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(r->err, errno, "read at byte %" PRIu64, f->meta_len);
        }
        if (n == 0)
            return err_set(r->err, GENAI_ECORRUPT,
                           "file shrank while reading: end at byte %" PRIu64 ", size was %" PRIu64,
                           f->meta_len, f->file_size);
        f->meta_len += (uint64_t)n;
    }
    return 0;
}

/* Makes n bytes at the cursor available in the window, or fails with a detail
 * naming the byte offset. The caller prefixes what it was reading. */
static int rd_need(struct rd *r, uint64_t n)
{
    uint64_t end;
    if (__builtin_add_overflow(r->off, n, &end) || end > r->f->file_size)
        return err_set(r->err, GENAI_ECORRUPT,
                       "%" PRIu64 " bytes at byte %" PRIu64
                       " run past the end of the file (size %" PRIu64 ")",
                       n, r->off, r->f->file_size);
    if (end <= r->f->meta_len)
        return 0;
    if (end > GGUF_MAX_META_BYTES)
        return err_set(r->err, GENAI_ETOO_LARGE,
                       "header reaches byte %" PRIu64 ", past the limit of %" PRIu64 " MiB", end,
                       GGUF_MAX_META_BYTES >> 20);
    return rd_fill(r, end);
}

static int rd_u32(struct rd *r, uint32_t *out)
{
    int rc = rd_need(r, 4);
    if (rc < 0)
        return rc;
    *out = le32(r->f->meta + r->off);
    r->off += 4;
    return 0;
}

static int rd_u64(struct rd *r, uint64_t *out)
{
    int rc = rd_need(r, 8);
    if (rc < 0)
        return rc;
    *out = le64(r->f->meta + r->off);
    r->off += 8;
    return 0;
}

/* A string: *off is where its bytes start. Longer than max: GENAI_ETOO_LARGE. */
static int rd_str(struct rd *r, uint64_t max, uint64_t *off, uint64_t *len)
{
    uint64_t at = r->off, n;
    int rc = rd_u64(r, &n);
    if (rc < 0)
        return rc;
    if (n > max)
        return err_set(r->err, GENAI_ETOO_LARGE,
                       "string length %" PRIu64 " at byte %" PRIu64 " exceeds the limit %" PRIu64,
                       n, at, max);
    rc = rd_need(r, n);
    if (rc < 0)
        return rc;
    *off = r->off;
    *len = n;
    r->off += n;
    return 0;
}

/* Decodes one fixed-size scalar at p into kv->v. */
static void decode_scalar(gguf_kv *kv, uint32_t t, const uint8_t *p)
{
    float f32;
    uint32_t bits;
    switch (t) {
    case GGUF_VAL_UINT8:
        kv->v.u64 = p[0];
        break;
    case GGUF_VAL_INT8:
        kv->v.i64 = (int8_t)p[0];
        break;
    case GGUF_VAL_BOOL:
        kv->v.u64 = p[0] != 0;
        break;
    case GGUF_VAL_UINT16:
        kv->v.u64 = le16(p);
        break;
    case GGUF_VAL_INT16:
        kv->v.i64 = (int16_t)le16(p);
        break;
    case GGUF_VAL_UINT32:
        kv->v.u64 = le32(p);
        break;
    case GGUF_VAL_INT32:
        kv->v.i64 = (int32_t)le32(p);
        break;
    case GGUF_VAL_FLOAT32:
        bits = le32(p);
        memcpy(&f32, &bits, sizeof(f32));
        kv->v.f64 = f32;
        break;
    case GGUF_VAL_UINT64:
        kv->v.u64 = le64(p);
        break;
    case GGUF_VAL_INT64:
        kv->v.i64 = (int64_t)le64(p);
        break;
    case GGUF_VAL_FLOAT64: {
        uint64_t b64 = le64(p);
        memcpy(&kv->v.f64, &b64, sizeof(kv->v.f64));
        break;
    }
    default:
        break;
    }
}

/* Array value: element type, count, elements. Offsets are kept in kv->data
 * (as an integer) until fixup(). */
static int parse_array(struct rd *r, gguf_kv *kv)
{
    uint64_t at = r->off;
    uint32_t et;
    int rc = rd_u32(r, &et);
    if (rc < 0)
        return rc;
    if (et == GGUF_VAL_ARRAY)
        return err_set(r->err, GENAI_EUNSUPPORTED, "nested array at byte %" PRIu64, at);
    if (et >= GGUF_VAL__COUNT)
        return err_set(r->err, GENAI_ECORRUPT,
                       "unknown array element type %" PRIu32 " at byte %" PRIu64, et, at);
    uint64_t count_at = r->off, n;
    rc = rd_u64(r, &n);
    if (rc < 0)
        return rc;
    kv->arr_type = (enum gguf_vtype)et;
    kv->n = n;
    uint64_t start = r->off;
    uint32_t es = vtype_size(et);
    if (es != 0) {
        uint64_t total;
        if (__builtin_mul_overflow(n, (uint64_t)es, &total) || total > GGUF_MAX_META_BYTES)
            return err_set(r->err, GENAI_ETOO_LARGE,
                           "array count %" PRIu64 " at byte %" PRIu64 " exceeds the header limit",
                           n, count_at);
        rc = rd_need(r, total);
        if (rc < 0)
            return rc;
        r->off += total;
    } else {
        /* Strings: each needs at least its 8-byte length. */
        if (n > GGUF_MAX_META_BYTES / 8)
            return err_set(r->err, GENAI_ETOO_LARGE,
                           "array count %" PRIu64 " at byte %" PRIu64 " exceeds the header limit",
                           n, count_at);
        /* Hot loop (a vocabulary has 10^5 strings): elements wholly inside
         * the window are skipped here; only one that crosses its end goes
         * through rd_str(), which grows the window or fails. */
        for (uint64_t i = 0; i < n; i++) {
            uint64_t left = r->f->meta_len - r->off, sl, so;
            if (left >= 8) {
                sl = le64(r->f->meta + r->off);
                if (sl <= left - 8) {
                    r->off += 8 + sl;
                    continue;
                }
            }
            rc = rd_str(r, GGUF_MAX_META_BYTES, &so, &sl);
            if (rc < 0) {
                err_prefix(r->err, "element %" PRIu64, i);
                return rc;
            }
        }
    }
    kv->data = (const uint8_t *)(uintptr_t)start;
    kv->data_len = r->off - start;
    return 0;
}

static int grow(void **arr, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint64_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = mem_reallocarray(*arr, (size_t)n, elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static int parse_kv(struct rd *r, uint64_t i)
{
    gguf_file *f = r->f;
    if (grow((void **)&f->kv, &f->kv_cap, i + 1, sizeof(gguf_kv)) < 0)
        return err_set(r->err, -ENOMEM, "out of memory for metadata entry %" PRIu64, i);
    gguf_kv *kv = &f->kv[i];
    memset(kv, 0, sizeof(*kv));
    kv->key_off = r->off;
    uint64_t koff, klen;
    int rc = rd_str(r, GGUF_MAX_KEY_LEN, &koff, &klen);
    if (rc < 0) {
        err_prefix(r->err, "metadata %" PRIu64 " key", i);
        return rc;
    }
    if (klen == 0)
        return err_set(r->err, GENAI_ECORRUPT, "metadata %" PRIu64 ": empty key at byte %" PRIu64,
                       i, kv->key_off);
    kv->key.ptr = (const char *)(uintptr_t)koff;
    kv->key.len = klen;
    f->n_kv = i + 1; /* from here on the entry is visible to the error path */

    uint64_t tat = r->off;
    uint32_t t;
    rc = rd_u32(r, &t);
    if (rc == 0 && t >= GGUF_VAL__COUNT)
        rc = err_set(r->err, GENAI_ECORRUPT, "unknown value type %" PRIu32 " at byte %" PRIu64, t,
                     tat);
    if (rc == 0) {
        kv->type = (enum gguf_vtype)t;
        kv->n = 1;
        uint32_t sz = vtype_size(t);
        if (t == GGUF_VAL_ARRAY) {
            rc = parse_array(r, kv);
        } else if (t == GGUF_VAL_STRING) {
            uint64_t so, sl;
            rc = rd_str(r, GGUF_MAX_META_BYTES, &so, &sl);
            kv->v.str.ptr = (const char *)(uintptr_t)so;
            kv->v.str.len = sl;
        } else if ((rc = rd_need(r, sz)) == 0) {
            decode_scalar(kv, t, f->meta + r->off);
            r->off += sz;
        }
    }
    if (rc < 0) {
        /* The key bytes are in the window: name it (offsets are not fixed up yet). */
        err_prefix(r->err, "metadata %" PRIu64 " '%.*s'", i, (int)(klen > 200 ? 200 : klen),
                   (const char *)f->meta + koff);
        return rc;
    }
    return 0;
}

static int parse_tensor(struct rd *r, uint64_t i)
{
    gguf_file *f = r->f;
    if (grow((void **)&f->tensors, &f->tensor_cap, i + 1, sizeof(gguf_tensor)) < 0)
        return err_set(r->err, -ENOMEM, "out of memory for tensor %" PRIu64, i);
    gguf_tensor *t = &f->tensors[i];
    memset(t, 0, sizeof(*t));
    t->info_off = r->off;
    uint64_t noff, nlen;
    int rc = rd_str(r, GGUF_MAX_TENSOR_NAME, &noff, &nlen);
    if (rc < 0) {
        err_prefix(r->err, "tensor %" PRIu64 " name", i);
        return rc;
    }
    f->n_tensors = i + 1;
    t->name.ptr = (const char *)(uintptr_t)noff;
    t->name.len = nlen;
#define TNAME (int)nlen, (const char *)f->meta + noff

    uint64_t at = r->off;
    if ((rc = rd_u32(r, &t->n_dims)) < 0)
        goto fail;
    if (t->n_dims > GGUF_MAX_DIMS) {
        rc = err_set(r->err, GENAI_ECORRUPT, "n_dims %" PRIu32 " at byte %" PRIu64 " exceeds %u",
                     t->n_dims, at, GGUF_MAX_DIMS);
        goto fail;
    }
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = r->off;
        if ((rc = rd_u64(r, &t->ne[d])) < 0)
            goto fail;
        if (t->ne[d] > (uint64_t)INT64_MAX) {
            rc = err_set(r->err, GENAI_ECORRUPT,
                         "dimension %" PRIu32 " = %" PRIu64 " at byte %" PRIu64
                         " is negative as int64",
                         d, t->ne[d], at);
            goto fail;
        }
    }
    at = r->off;
    if ((rc = rd_u32(r, &t->type)) < 0)
        goto fail;
    uint32_t be, bb;
    if (gguf_dtype_info(t->type, &be, &bb) < 0) {
        rc = err_set(r->err, GENAI_EUNSUPPORTED, "unknown ggml type %" PRIu32 " at byte %" PRIu64,
                     t->type, at);
        goto fail;
    }
    if ((rc = rd_u64(r, &t->offset)) < 0)
        goto fail;

    uint64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        if (__builtin_mul_overflow(n, t->ne[d], &n) || n > (uint64_t)INT64_MAX) {
            rc = err_set(r->err, GENAI_ECORRUPT,
                         "dimensions overflow (%" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64
                         ") at byte %" PRIu64,
                         t->ne[0], t->ne[1], t->ne[2], t->ne[3], t->info_off + 8 + nlen + 4);
            goto fail;
        }
    }
    if (t->ne[0] % be != 0) {
        rc = err_set(r->err, GENAI_ECORRUPT,
                     "row of %" PRIu64 " elements is not a multiple of the %s block (%" PRIu32 ")",
                     t->ne[0], gguf_dtype_name(t->type), be);
        goto fail;
    }
    uint64_t bytes = t->ne[0] / be;
    int ovf = __builtin_mul_overflow(bytes, (uint64_t)bb, &bytes);
    for (uint32_t d = 1; d < GGUF_MAX_DIMS; d++)
        ovf |= __builtin_mul_overflow(bytes, t->ne[d], &bytes);
    if (ovf) {
        rc = err_set(r->err, GENAI_ECORRUPT, "byte size overflows 64 bits");
        goto fail;
    }
    t->n_elements = n;
    t->n_bytes = bytes;
    return 0;
fail:
    err_prefix(r->err, "tensor %" PRIu64 " '%.*s'", i, TNAME);
    return rc;
#undef TNAME
}

/* Turns the offsets recorded during the walk into pointers into the window. */
static void fixup(gguf_file *f)
{
    const char *base = (const char *)f->meta;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->key.ptr = base + (uintptr_t)kv->key.ptr;
        if (kv->type == GGUF_VAL_STRING)
            kv->v.str.ptr = base + (uintptr_t)kv->v.str.ptr;
        else if (kv->type == GGUF_VAL_ARRAY)
            kv->data = f->meta + (uintptr_t)kv->data;
    }
    for (uint64_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].name.ptr = base + (uintptr_t)f->tensors[i].name.ptr;
}

static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int str_eq_n(gguf_str s, const char *p, uint64_t n)
{
    return s.len == n && memcmp(s.ptr, p, (size_t)n) == 0;
}

/* Builds an open-addressing index over n names found by name_at(); returns
 * the index of the first duplicate in *dup (or UINT64_MAX). */
static int build_index(uint32_t **out, uint64_t *out_cap, uint64_t n,
                       gguf_str (*name_at)(const gguf_file *, uint64_t), const gguf_file *f,
                       uint64_t *dup)
{
    uint64_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    uint32_t *idx = mem_calloc((size_t)cap, sizeof(*idx));
    if (idx == NULL)
        return -ENOMEM;
    *dup = UINT64_MAX;
    for (uint64_t i = 0; i < n; i++) {
        gguf_str s = name_at(f, i);
        uint64_t h = hash_bytes(s.ptr, s.len) & (cap - 1);
        while (idx[h] != 0) {
            if (str_eq_n(name_at(f, idx[h] - 1), s.ptr, s.len)) {
                *dup = i;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (*dup != UINT64_MAX)
            break;
        idx[h] = (uint32_t)(i + 1);
    }
    *out = idx;
    *out_cap = cap;
    return 0;
}

static gguf_str kv_name(const gguf_file *f, uint64_t i)
{
    return f->kv[i].key;
}

static gguf_str tensor_name(const gguf_file *f, uint64_t i)
{
    return f->tensors[i].name;
}

static uint64_t lookup(const uint32_t *idx, uint64_t cap, const char *name, uint64_t n,
                       gguf_str (*name_at)(const gguf_file *, uint64_t), const gguf_file *f)
{
    if (idx == NULL)
        return UINT64_MAX;
    uint64_t h = hash_bytes(name, n) & (cap - 1);
    while (idx[h] != 0) {
        if (str_eq_n(name_at(f, idx[h] - 1), name, n))
            return idx[h] - 1;
        h = (h + 1) & (cap - 1);
    }
    return UINT64_MAX;
}

/* general.alignment: a non-zero power of two stored as uint32 (gguf.md). */
static int read_alignment(gguf_file *f, genai_error *err)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (kv == NULL)
        return 0;
    if (kv->type != GGUF_VAL_UINT32)
        return err_set(err, GENAI_ECORRUPT,
                       "general.alignment at byte %" PRIu64 " has type %s, expected uint32",
                       kv->key_off, gguf_vtype_name(kv->type));
    uint64_t a = kv->v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return err_set(err, GENAI_ECORRUPT,
                       "general.alignment %" PRIu64 " at byte %" PRIu64 " is not a power of two", a,
                       kv->key_off);
    f->alignment = (uint32_t)a;
    return 0;
}

/* Offsets aligned, in order, not overlapping, data inside the file. */
static int check_tensor_data(gguf_file *f, genai_error *err)
{
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t field = t->info_off + 8 + t->name.len + 4 + 8 * (uint64_t)t->n_dims + 4;
        uint64_t end;
        if (t->offset % f->alignment != 0)
            return err_set(err, GENAI_ECORRUPT,
                           "tensor %" PRIu64 " '%.*s': offset %" PRIu64
                           " not a multiple of the alignment %" PRIu32 " at byte %" PRIu64,
                           i, (int)t->name.len, t->name.ptr, t->offset, f->alignment, field);
        if (t->offset < prev_end)
            return err_set(err, GENAI_ECORRUPT,
                           "tensor %" PRIu64 " '%.*s': offset %" PRIu64
                           " overlaps the previous tensor (ends at %" PRIu64 ") at byte %" PRIu64,
                           i, (int)t->name.len, t->name.ptr, t->offset, prev_end, field);
        if (__builtin_add_overflow(f->data_offset, t->offset, &t->file_offset) ||
            __builtin_add_overflow(t->file_offset, t->n_bytes, &end) || end > f->file_size)
            return err_set(err, GENAI_ECORRUPT,
                           "tensor %" PRIu64 " '%.*s': offset %" PRIu64 " + %" PRIu64
                           " bytes beyond end of file (size %" PRIu64 ") at byte %" PRIu64,
                           i, (int)t->name.len, t->name.ptr, t->offset, t->n_bytes, f->file_size,
                           field);
        prev_end = t->offset + t->n_bytes;
        f->tensor_bytes += t->n_bytes;
    }
    return 0;
}

/* Pointers back to offsets (the inverse of fixup), before the window moves. */
static void unfixup(gguf_file *f)
{
    const char *base = (const char *)f->meta;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->key.ptr = (const char *)(uintptr_t)(kv->key.ptr - base);
        if (kv->type == GGUF_VAL_STRING)
            kv->v.str.ptr = (const char *)(uintptr_t)(kv->v.str.ptr - base);
        else if (kv->type == GGUF_VAL_ARRAY)
            kv->data = (const uint8_t *)(uintptr_t)(kv->data - f->meta);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].name.ptr = (const char *)(uintptr_t)(f->tensors[i].name.ptr - base);
}

/* Gives back the window bytes read past the header (tensor data). */
static void shrink_window(gguf_file *f, uint64_t end)
{
    if (end == 0 || end >= f->meta_len || f->meta_len - end < WINDOW_MIN)
        return;
    unfixup(f);
    uint8_t *p = mem_realloc(f->meta, (size_t)end);
    if (p != NULL) { /* on failure keeping the larger block is harmless */
        f->meta = p;
        f->meta_len = end;
    }
    fixup(f);
}

static int parse(struct rd *r)
{
    gguf_file *f = r->f;
    genai_error *err = r->err;
    int rc;
    if ((rc = rd_need(r, 24)) < 0) {
        err_prefix(err, "header");
        return rc;
    }
    const uint8_t *h = f->meta;
    if (memcmp(h, "GGUF", 4) != 0)
        return err_set(err, GENAI_ECORRUPT,
                       "not a GGUF file: magic %02x %02x %02x %02x at byte 0, expected 'GGUF'",
                       h[0], h[1], h[2], h[3]);
    uint32_t v = le32(h + 4);
    if (v == 1)
        return err_set(err, GENAI_EUNSUPPORTED, "GGUF version 1 at byte 4 is not supported");
    if (v != 2 && v != 3) {
        uint32_t sw = __builtin_bswap32(v);
        if (sw >= 1 && sw <= 3)
            return err_set(err, GENAI_EUNSUPPORTED,
                           "big-endian GGUF (version %" PRIu32 " at byte 4) is not supported", sw);
        return err_set(err, GENAI_EUNSUPPORTED, "unknown GGUF version %" PRIu32 " at byte 4", v);
    }
    f->version = v;
    uint64_t n_tensors = le64(h + 8), n_kv = le64(h + 16);
    r->off = 24;
    if (n_tensors > GGUF_MAX_TENSORS)
        return err_set(err, GENAI_ETOO_LARGE,
                       "tensor count %" PRIu64 " at byte 8 exceeds the limit %u", n_tensors,
                       GGUF_MAX_TENSORS);
    if (n_kv > GGUF_MAX_KV)
        return err_set(err, GENAI_ETOO_LARGE,
                       "metadata count %" PRIu64 " at byte 16 exceeds the limit %u", n_kv,
                       GGUF_MAX_KV);
    if (n_kv * KV_MIN_BYTES + n_tensors * TENSOR_MIN_BYTES > f->file_size - 24)
        return err_set(err, GENAI_ECORRUPT,
                       "%" PRIu64 " metadata entries and %" PRIu64
                       " tensors (bytes 8-23) cannot fit in a file of %" PRIu64 " bytes",
                       n_kv, n_tensors, f->file_size);
    for (uint64_t i = 0; i < n_kv; i++)
        if ((rc = parse_kv(r, i)) < 0)
            return rc;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((rc = parse_tensor(r, i)) < 0)
            return rc;
    fixup(f);

    uint64_t dup;
    if ((rc = build_index(&f->kv_index, &f->kv_index_cap, f->n_kv, kv_name, f, &dup)) < 0)
        return err_set(err, rc, "out of memory for the metadata index");
    if (dup != UINT64_MAX)
        return err_set(err, GENAI_ECORRUPT, "duplicate key '%.*s' at byte %" PRIu64,
                       (int)f->kv[dup].key.len, f->kv[dup].key.ptr, f->kv[dup].key_off);
    if ((rc = build_index(&f->t_index, &f->t_index_cap, f->n_tensors, tensor_name, f, &dup)) < 0)
        return err_set(err, rc, "out of memory for the tensor index");
    if (dup != UINT64_MAX)
        return err_set(err, GENAI_ECORRUPT, "duplicate tensor name '%.*s' at byte %" PRIu64,
                       (int)f->tensors[dup].name.len, f->tensors[dup].name.ptr,
                       f->tensors[dup].info_off);
    if ((rc = read_alignment(f, err)) < 0)
        return rc;
    uint64_t a = f->alignment;
    f->data_offset = (r->off + a - 1) / a * a; /* r->off <= 256 MiB: no overflow */
    if ((rc = check_tensor_data(f, err)) < 0)
        return rc;
    shrink_window(f, r->off);
    return 0;
}

static int parse_source(struct rd *r, uint64_t file_size, gguf_file **out)
{
    gguf_file *f = mem_calloc(1, sizeof(*f));
    if (f == NULL)
        return err_set(r->err, -ENOMEM, "out of memory");
    f->file_size = file_size;
    r->f = f;
    int rc = parse(r);
    if (rc < 0) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_parse_buffer(const void *data, size_t len, gguf_file **out, genai_error *err)
{
    struct rd r = {.fd = -1, .mem = data, .err = err};
    if (data == NULL && len > 0)
        return err_set(err, GENAI_EBAD_ARG, "NULL buffer");
    return parse_source(&r, len, out);
}

int gguf_open(const char *path, gguf_file **out, genai_error *err)
{
    /* O_NONBLOCK: a FIFO must not hang the open; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return err_errno(err, errno, "%s", path);
    struct stat st;
    int rc;
    if (fstat(fd, &st) != 0) {
        rc = err_errno(err, errno, "%s: fstat", path);
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(err, GENAI_EBAD_ARG, "%s: not a regular file", path);
        goto out_close;
    }
    struct rd r = {.fd = fd, .err = err};
    rc = parse_source(&r, (uint64_t)st.st_size, out);
    if (rc < 0)
        err_prefix(err, "%s", path);
out_close:
    close(fd);
    return rc;
}

void gguf_close(gguf_file *f)
{
    if (f == NULL)
        return;
    mem_free(f->meta);
    mem_free(f->kv);
    mem_free(f->tensors);
    mem_free(f->kv_index);
    mem_free(f->t_index);
    mem_free(f);
}

uint32_t gguf_version(const gguf_file *f)
{
    return f->version;
}

uint32_t gguf_alignment(const gguf_file *f)
{
    return f->alignment;
}

uint64_t gguf_file_size(const gguf_file *f)
{
    return f->file_size;
}

uint64_t gguf_data_offset(const gguf_file *f)
{
    return f->data_offset;
}

uint64_t gguf_meta_bytes(const gguf_file *f)
{
    return f->meta_len;
}

uint64_t gguf_heap_bytes(const gguf_file *f)
{
    return sizeof(*f) + f->meta_len + f->kv_cap * sizeof(gguf_kv) +
           f->tensor_cap * sizeof(gguf_tensor) +
           (f->kv_index_cap + f->t_index_cap) * sizeof(uint32_t);
}

uint64_t gguf_tensor_bytes(const gguf_file *f)
{
    return f->tensor_bytes;
}

uint64_t gguf_n_kv(const gguf_file *f)
{
    return f->n_kv;
}

const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i)
{
    return i < f->n_kv ? &f->kv[i] : NULL;
}

uint64_t gguf_n_tensors(const gguf_file *f)
{
    return f->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

void gguf_file_set_split(gguf_file *f, uint32_t split)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        f->tensors[i].split = split;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key)
{
    uint64_t i = lookup(f->kv_index, f->kv_index_cap, key, strlen(key), kv_name, f);
    return i == UINT64_MAX ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor_n(const gguf_file *f, const char *name, uint64_t len)
{
    uint64_t i = lookup(f->t_index, f->t_index_cap, name, len, tensor_name, f);
    return i == UINT64_MAX ? NULL : &f->tensors[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    return gguf_find_tensor_n(f, name, strlen(name));
}

int gguf_str_eq(gguf_str s, const char *c)
{
    return str_eq_n(s, c, strlen(c));
}

/* ---- typed access ---------------------------------------------------- */

/* One numeric element, widened. */
struct num {
    enum gguf_vtype type;
    uint64_t u;
    int64_t i;
    double f;
};

static int is_signed(uint32_t t)
{
    return t == GGUF_VAL_INT8 || t == GGUF_VAL_INT16 || t == GGUF_VAL_INT32 || t == GGUF_VAL_INT64;
}

static int is_float(uint32_t t)
{
    return t == GGUF_VAL_FLOAT32 || t == GGUF_VAL_FLOAT64;
}

int gguf_kv_is_numeric(const gguf_kv *kv)
{
    uint32_t t = kv->type == GGUF_VAL_ARRAY ? kv->arr_type : kv->type;
    return vtype_size(t) != 0;
}

static int get_num(const gguf_kv *kv, uint64_t i, struct num *out, genai_error *err)
{
    gguf_kv tmp;
    const gguf_kv *src = kv;
    if (kv->type == GGUF_VAL_ARRAY) {
        if (i >= kv->n)
            return err_set(err, GENAI_ECORRUPT,
                           "key '%.*s': index %" PRIu64 " past %" PRIu64 " elements",
                           (int)kv->key.len, kv->key.ptr, i, kv->n);
        uint32_t es = vtype_size(kv->arr_type);
        if (es == 0)
            return err_set(err, GENAI_ECORRUPT, "key '%.*s': array of %s, expected numbers",
                           (int)kv->key.len, kv->key.ptr, gguf_vtype_name(kv->arr_type));
        memset(&tmp, 0, sizeof(tmp));
        decode_scalar(&tmp, kv->arr_type, kv->data + i * es);
        tmp.type = kv->arr_type;
        src = &tmp;
    } else if (i != 0) {
        return err_set(err, GENAI_ECORRUPT, "key '%.*s': index %" PRIu64 " of a scalar",
                       (int)kv->key.len, kv->key.ptr, i);
    } else if (vtype_size(kv->type) == 0) {
        return err_set(err, GENAI_ECORRUPT, "key '%.*s': %s, expected a number", (int)kv->key.len,
                       kv->key.ptr, gguf_vtype_name(kv->type));
    }
    out->type = src->type;
    if (is_float(src->type)) {
        out->f = src->v.f64;
    } else if (is_signed(src->type)) {
        out->i = src->v.i64;
        out->f = (double)src->v.i64;
    } else {
        out->u = src->v.u64;
        out->f = (double)src->v.u64;
    }
    return 0;
}

int gguf_kv_u64(const gguf_kv *kv, uint64_t i, uint64_t *out, genai_error *err)
{
    struct num n = {0};
    int rc = get_num(kv, i, &n, err);
    if (rc < 0)
        return rc;
    if (is_float(n.type))
        return err_set(err, GENAI_ECORRUPT, "key '%.*s': %s, expected an integer", (int)kv->key.len,
                       kv->key.ptr, gguf_vtype_name(n.type));
    if (is_signed(n.type)) {
        if (n.i < 0)
            return err_set(err, GENAI_ECORRUPT, "key '%.*s': negative value %" PRId64,
                           (int)kv->key.len, kv->key.ptr, n.i);
        n.u = (uint64_t)n.i;
    }
    *out = n.u;
    return 0;
}

int gguf_kv_i64(const gguf_kv *kv, uint64_t i, int64_t *out, genai_error *err)
{
    struct num n = {0};
    int rc = get_num(kv, i, &n, err);
    if (rc < 0)
        return rc;
    if (is_float(n.type))
        return err_set(err, GENAI_ECORRUPT, "key '%.*s': %s, expected an integer", (int)kv->key.len,
                       kv->key.ptr, gguf_vtype_name(n.type));
    if (!is_signed(n.type)) {
        if (n.u > (uint64_t)INT64_MAX)
            return err_set(err, GENAI_ECORRUPT, "key '%.*s': value %" PRIu64 " exceeds int64",
                           (int)kv->key.len, kv->key.ptr, n.u);
        n.i = (int64_t)n.u;
    }
    *out = n.i;
    return 0;
}

int gguf_kv_f64(const gguf_kv *kv, uint64_t i, double *out, genai_error *err)
{
    struct num n = {0};
    int rc = get_num(kv, i, &n, err);
    if (rc < 0)
        return rc;
    *out = n.f;
    return 0;
}

int gguf_kv_str(const gguf_kv *kv, uint64_t i, gguf_str *out, genai_error *err)
{
    if (kv->type == GGUF_VAL_STRING) {
        if (i != 0)
            return err_set(err, GENAI_ECORRUPT, "key '%.*s': index %" PRIu64 " of a scalar",
                           (int)kv->key.len, kv->key.ptr, i);
        *out = kv->v.str;
        return 0;
    }
    if (kv->type != GGUF_VAL_ARRAY || kv->arr_type != GGUF_VAL_STRING)
        return err_set(err, GENAI_ECORRUPT, "key '%.*s': %s, expected a string", (int)kv->key.len,
                       kv->key.ptr, gguf_vtype_name(kv->type));
    if (i >= kv->n)
        return err_set(err, GENAI_ECORRUPT,
                       "key '%.*s': index %" PRIu64 " past %" PRIu64 " elements", (int)kv->key.len,
                       kv->key.ptr, i, kv->n);
    gguf_str_iter it;
    gguf_str s = {NULL, 0};
    gguf_str_iter_init(&it, kv);
    for (uint64_t k = 0; k <= i; k++)
        gguf_str_iter_next(&it, &s);
    *out = s;
    return 0;
}

void gguf_str_iter_init(gguf_str_iter *it, const gguf_kv *kv)
{
    int ok = kv->type == GGUF_VAL_ARRAY && kv->arr_type == GGUF_VAL_STRING;
    it->p = ok ? kv->data : NULL;
    it->left = ok ? kv->n : 0;
}

int gguf_str_iter_next(gguf_str_iter *it, gguf_str *out)
{
    if (it->left == 0)
        return 0;
    uint64_t n = le64(it->p);
    out->ptr = (const char *)it->p + 8;
    out->len = n;
    it->p += 8 + n;
    it->left--;
    return 1;
}

static const gguf_kv *find_scalar(const gguf_file *f, const char *key, genai_error *err, int *rc)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (kv == NULL) {
        *rc = err_set(err, GENAI_ENOT_FOUND, "key '%s' not found", key);
        return NULL;
    }
    if (kv->type == GGUF_VAL_ARRAY) {
        *rc = err_set(err, GENAI_ECORRUPT,
                      "key '%s' at byte %" PRIu64 " is an array, expected a scalar", key,
                      kv->key_off);
        return NULL;
    }
    *rc = 0;
    return kv;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, genai_error *err)
{
    int rc;
    const gguf_kv *kv = find_scalar(f, key, err, &rc);
    return kv == NULL ? rc : gguf_kv_u64(kv, 0, out, err);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, genai_error *err)
{
    uint64_t v = 0;
    int rc = gguf_get_u64(f, key, &v, err);
    if (rc < 0)
        return rc;
    if (v > UINT32_MAX)
        return err_set(err, GENAI_ECORRUPT, "key '%s': value %" PRIu64 " exceeds uint32", key, v);
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, genai_error *err)
{
    int rc;
    const gguf_kv *kv = find_scalar(f, key, err, &rc);
    return kv == NULL ? rc : gguf_kv_i64(kv, 0, out, err);
}

int gguf_get_f64(const gguf_file *f, const char *key, double *out, genai_error *err)
{
    int rc;
    const gguf_kv *kv = find_scalar(f, key, err, &rc);
    return kv == NULL ? rc : gguf_kv_f64(kv, 0, out, err);
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, genai_error *err)
{
    int rc;
    const gguf_kv *kv = find_scalar(f, key, err, &rc);
    if (kv == NULL)
        return rc;
    uint64_t v = 0;
    if ((rc = gguf_kv_u64(kv, 0, &v, err)) < 0)
        return rc;
    *out = v != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, genai_error *err)
{
    int rc;
    const gguf_kv *kv = find_scalar(f, key, err, &rc);
    if (kv == NULL)
        return rc;
    if (kv->type != GGUF_VAL_STRING)
        return err_set(err, GENAI_ECORRUPT, "key '%s' at byte %" PRIu64 ": %s, expected a string",
                       key, kv->key_off, gguf_vtype_name(kv->type));
    *out = kv->v.str;
    return 0;
}
