/*
 * safetensors.c - the bounded safetensors header reader (see safetensors.h).
 *
 * How it reads: pread the 8-byte length, check it against the cap and the
 * file size, pread exactly that many bytes, and hand them to jansson with
 * duplicate keys refused (a name given twice would let two readers disagree
 * on a tensor). Then one pass over the object builds the tensor table, each
 * entry checked on its own; a final pass over the entries sorted by offset
 * finds overlaps. The file's bytes after the header are never read.
 */
#include "diffusion/safetensors.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dm_st_file {
    uint64_t file_size;
    uint64_t header_len;
    uint64_t tensor_bytes;
    dm_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
    dm_st_meta *meta; /* sorted by key */
    size_t n_meta;
};

static const struct {
    const char *name;
    unsigned bits;
} dtypes[DM_ST_DTYPE__COUNT] = {
    [DM_ST_BOOL] = {"BOOL", 8},       [DM_ST_U8] = {"U8", 8},
    [DM_ST_I8] = {"I8", 8},           [DM_ST_F8_E5M2] = {"F8_E5M2", 8},
    [DM_ST_F8_E4M3] = {"F8_E4M3", 8}, [DM_ST_F8_E8M0] = {"F8_E8M0", 8},
    [DM_ST_I16] = {"I16", 16},        [DM_ST_U16] = {"U16", 16},
    [DM_ST_F16] = {"F16", 16},        [DM_ST_BF16] = {"BF16", 16},
    [DM_ST_I32] = {"I32", 32},        [DM_ST_U32] = {"U32", 32},
    [DM_ST_F32] = {"F32", 32},        [DM_ST_F64] = {"F64", 64},
    [DM_ST_I64] = {"I64", 64},        [DM_ST_U64] = {"U64", 64},
    [DM_ST_F4] = {"F4", 4},           [DM_ST_F6_E2M3] = {"F6_E2M3", 6},
    [DM_ST_F6_E3M2] = {"F6_E3M2", 6},
};

const char *dm_st_dtype_name(enum dm_st_dtype t)
{
    if ((unsigned)t >= DM_ST_DTYPE__COUNT)
        return "unknown";
    return dtypes[t].name;
}

unsigned dm_st_dtype_bits(enum dm_st_dtype t)
{
    if ((unsigned)t >= DM_ST_DTYPE__COUNT)
        return 0;
    return dtypes[t].bits;
}

int dm_st_dtype_parse(const char *s, enum dm_st_dtype *out)
{
    for (unsigned i = 0; i < DM_ST_DTYPE__COUNT; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (enum dm_st_dtype)i;
            return 0;
        }
    }
    return GENAI_EUNSUPPORTED;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void dm_st_close(dm_st_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        mem_free(f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        mem_free(f->meta[i].key);
        mem_free(f->meta[i].value);
    }
    mem_free(f->tensors);
    mem_free(f->meta);
    mem_free(f);
}

/* A JSON integer in 0..2^63-1. */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_tensor(const char *name, const json_t *obj, uint64_t buf_len, dm_st_tensor *t,
                        genai_error *err)
{
    if (!json_is_object(obj))
        return err_set(err, GENAI_ECORRUPT, "tensor '%s': entry is not an object", name);
    const json_t *jd = json_object_get(obj, "dtype");
    const json_t *js = json_object_get(obj, "shape");
    const json_t *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd))
        return err_set(err, GENAI_ECORRUPT, "tensor '%s': dtype missing or not a string", name);
    if (dm_st_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return err_set(err, GENAI_EUNSUPPORTED, "tensor '%s': unknown dtype '%.32s'", name,
                       json_string_value(jd));
    if (!json_is_array(js))
        return err_set(err, GENAI_ECORRUPT, "tensor '%s': shape missing or not an array", name);
    size_t nd = json_array_size(js);
    if (nd > DM_ST_MAX_DIMS)
        return err_set(err, GENAI_ECORRUPT, "tensor '%s': %zu dimensions (at most %u)", name, nd,
                       DM_ST_MAX_DIMS);
    uint64_t n = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (get_u64(json_array_get(js, i), &d) != 0)
            return err_set(err, GENAI_ECORRUPT,
                           "tensor '%s': shape[%zu] is not a non-negative integer", name, i);
        if (__builtin_mul_overflow(n, d, &n))
            return err_set(err, GENAI_ECORRUPT, "tensor '%s': element count overflows", name);
        t->shape[i] = d;
    }
    t->n_dims = (uint32_t)nd;
    t->n_elements = n;
    uint64_t bits;
    if (__builtin_mul_overflow(n, (uint64_t)dm_st_dtype_bits(t->dtype), &bits))
        return err_set(err, GENAI_ECORRUPT, "tensor '%s': byte size overflows", name);
    if (bits % 8 != 0)
        return err_set(err, GENAI_ECORRUPT,
                       "tensor '%s': %" PRIu64 " elements of %s are not whole bytes", name, n,
                       dm_st_dtype_name(t->dtype));
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        get_u64(json_array_get(jo, 0), &t->begin) != 0 ||
        get_u64(json_array_get(jo, 1), &t->end) != 0)
        return err_set(err, GENAI_ECORRUPT,
                       "tensor '%s': data_offsets is not two non-negative integers", name);
    if (t->begin > t->end || t->end > buf_len)
        return err_set(err, GENAI_ECORRUPT,
                       "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] outside the %" PRIu64
                       "-byte data buffer",
                       name, t->begin, t->end, buf_len);
    if (t->end - t->begin != bits / 8)
        return err_set(err, GENAI_ECORRUPT,
                       "tensor '%s': shape x %s = %" PRIu64 " bytes but data_offsets span %" PRIu64,
                       name, dm_st_dtype_name(t->dtype), bits / 8, t->end - t->begin);
    return 0;
}

static int parse_meta(dm_st_file *f, const json_t *obj, genai_error *err)
{
    if (!json_is_object(obj))
        return err_set(err, GENAI_ECORRUPT, "__metadata__ is not an object");
    size_t n = json_object_size(obj);
    if (n > DM_ST_MAX_META)
        return err_set(err, GENAI_ETOO_LARGE, "__metadata__ has %zu entries (at most %u)", n,
                       DM_ST_MAX_META);
    if (n == 0)
        return 0;
    f->meta = mem_calloc(n, sizeof(*f->meta));
    if (f->meta == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!json_is_string(v))
            return err_set(err, GENAI_ECORRUPT, "__metadata__ '%.200s': value is not a string",
                           key);
        dm_st_meta *m = &f->meta[f->n_meta];
        m->key = mem_strdup(key);
        m->value = mem_strdup(json_string_value(v));
        f->n_meta++;
        if (m->key == NULL || m->value == NULL)
            return err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const dm_st_tensor *)a)->name, ((const dm_st_tensor *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const dm_st_meta *)a)->key, ((const dm_st_meta *)b)->key);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const dm_st_tensor *x = *(const dm_st_tensor *const *)a;
    const dm_st_tensor *y = *(const dm_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Tensors sorted by offset must not overlap: each starts at or after the end
 * of the one before. */
static int check_overlap(const dm_st_file *f, genai_error *err)
{
    if (f->n_tensors < 2)
        return 0;
    const dm_st_tensor **order = mem_reallocarray(NULL, f->n_tensors, sizeof(*order));
    if (order == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof(*order), cmp_by_offset);
    int rc = 0;
    for (size_t i = 1; i < f->n_tensors; i++) {
        if (order[i]->begin < order[i - 1]->end) {
            rc = err_set(err, GENAI_ECORRUPT,
                         "tensors '%s' and '%s' overlap in the data buffer (%" PRIu64 " < %" PRIu64
                         ")",
                         order[i - 1]->name, order[i]->name, order[i]->begin, order[i - 1]->end);
            break;
        }
    }
    mem_free(order);
    return rc;
}

/* Parses the header bytes hdr[0..hlen) of a file of file_size bytes. */
static int parse_header(const uint8_t *hdr, uint64_t hlen, uint64_t file_size, dm_st_file **out,
                        genai_error *err)
{
    size_t lead = 0;
    while (lead < hlen &&
           (hdr[lead] == ' ' || hdr[lead] == '\t' || hdr[lead] == '\n' || hdr[lead] == '\r'))
        lead++;
    if (lead == hlen || hdr[lead] != '{')
        return err_set(err, GENAI_ECORRUPT, "header at offset 8 is not a JSON object");

    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return err_set(err, GENAI_ECORRUPT, "header JSON at byte %d of the header: %s",
                       jerr.position, jerr.text);
    int rc = 0;
    dm_st_file *f = NULL;
    if (!json_is_object(root)) {
        rc = err_set(err, GENAI_ECORRUPT, "header is not a JSON object");
        goto out_json;
    }
    size_t n = json_object_size(root);
    const json_t *meta = json_object_get(root, "__metadata__");
    if (meta != NULL)
        n--;
    if (n > DM_ST_MAX_TENSORS) {
        rc = err_set(err, GENAI_ETOO_LARGE, "%zu tensors (at most %u)", n, DM_ST_MAX_TENSORS);
        goto out_json;
    }
    f = mem_calloc(1, sizeof(*f));
    if (f == NULL || (n > 0 && (f->tensors = mem_calloc(n, sizeof(*f->tensors))) == NULL)) {
        rc = err_set(err, -ENOMEM, "out of memory");
        goto out_file;
    }
    f->file_size = file_size;
    f->header_len = hlen;
    uint64_t buf_len = file_size - 8 - hlen;

    if (meta != NULL && (rc = parse_meta(f, meta, err)) < 0)
        goto out_file;

    const char *key;
    const json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        size_t klen = strlen(key);
        if (klen == 0 || klen > DM_ST_MAX_NAME) {
            rc = err_set(err, GENAI_ECORRUPT, "tensor name of %zu bytes (1..%u)", klen,
                         DM_ST_MAX_NAME);
            goto out_file;
        }
        dm_st_tensor *t = &f->tensors[f->n_tensors];
        if ((rc = parse_tensor(key, v, buf_len, t, err)) < 0)
            goto out_file;
        if ((t->name = mem_strdup(key)) == NULL) {
            rc = err_set(err, -ENOMEM, "out of memory");
            goto out_file;
        }
        f->n_tensors++;
        f->tensor_bytes += t->end - t->begin; /* sum <= buf_len once no overlap */
    }
    if (f->n_tensors > 1)
        qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_tensor_name);
    if (f->n_meta > 1)
        qsort(f->meta, f->n_meta, sizeof(*f->meta), cmp_meta_key);
    for (size_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            rc = err_set(err, GENAI_ECORRUPT, "tensor '%s' appears twice", f->tensors[i].name);
            goto out_file;
        }
    }
    if ((rc = check_overlap(f, err)) < 0)
        goto out_file;
    *out = f;
    f = NULL;
out_file:
    dm_st_close(f);
out_json:
    json_decref(root);
    return rc;
}

/* Checks the 8-byte length field against the cap and the file size. */
static int check_len(const uint8_t first[8], uint64_t file_size, uint64_t *hlen, genai_error *err)
{
    uint64_t n = le64(first);
    if (n > DM_ST_MAX_HEADER)
        return err_set(err, GENAI_ETOO_LARGE,
                       "header length %" PRIu64 " at offset 0 exceeds the %" PRIu64 "-byte cap", n,
                       DM_ST_MAX_HEADER);
    if (n < 2 || n > file_size - 8)
        return err_set(err, GENAI_ECORRUPT,
                       "header length %" PRIu64 " at offset 0 does not fit a %" PRIu64 "-byte file",
                       n, file_size);
    *hlen = n;
    return 0;
}

int dm_st_parse_buffer(const void *data, size_t len, dm_st_file **out, genai_error *err)
{
    const uint8_t *p = data;
    uint64_t hlen = 0;
    if (len < 8)
        return err_set(err, GENAI_ECORRUPT, "%zu bytes: shorter than the 8-byte header length",
                       len);
    int rc = check_len(p, len, &hlen, err);
    if (rc < 0)
        return rc;
    return parse_header(p + 8, hlen, len, out, err);
}

static int pread_all(int fd, uint8_t *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return GENAI_ECORRUPT; /* the file shrank under us */
        done += (size_t)r;
    }
    return 0;
}

int dm_st_open(const char *path, dm_st_file **out, genai_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, errno, "%s", path);
    int rc;
    uint8_t *hdr = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = err_errno(err, errno, "%s: fstat", path);
        goto out_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(err, GENAI_EBAD_ARG, "%s: not a regular file", path);
        goto out_fd;
    }
    uint64_t size = (uint64_t)st.st_size, hlen = 0;
    uint8_t first[8];
    if (size < 8) {
        rc = err_set(err, GENAI_ECORRUPT,
                     "%s: %" PRIu64 " bytes: shorter than the 8-byte header length", path, size);
        goto out_fd;
    }
    if ((rc = pread_all(fd, first, 8, 0)) < 0) {
        err_set(err, rc, "%s: reading the header length failed", path);
        goto out_fd;
    }
    if ((rc = check_len(first, size, &hlen, err)) < 0) {
        err_prefix(err, "%s", path);
        goto out_fd;
    }
    hdr = mem_alloc((size_t)hlen);
    if (hdr == NULL) {
        rc = err_set(err, -ENOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, hlen);
        goto out_fd;
    }
    if ((rc = pread_all(fd, hdr, (size_t)hlen, 8)) < 0) {
        err_set(err, rc, "%s: reading the header failed", path);
        goto out_hdr;
    }
    if ((rc = parse_header(hdr, hlen, size, out, err)) < 0)
        err_prefix(err, "%s", path);
out_hdr:
    mem_free(hdr);
out_fd:
    close(fd);
    return rc;
}

uint64_t dm_st_file_size(const dm_st_file *f)
{
    return f->file_size;
}

uint64_t dm_st_header_len(const dm_st_file *f)
{
    return f->header_len;
}

uint64_t dm_st_tensor_bytes(const dm_st_file *f)
{
    return f->tensor_bytes;
}

size_t dm_st_n_tensors(const dm_st_file *f)
{
    return f->n_tensors;
}

const dm_st_tensor *dm_st_tensor_at(const dm_st_file *f, size_t i)
{
    return &f->tensors[i];
}

const dm_st_tensor *dm_st_find(const dm_st_file *f, const char *name)
{
    dm_st_tensor key = {.name = (char *)name};
    if (f->n_tensors == 0)
        return NULL;
    return bsearch(&key, f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_tensor_name);
}

size_t dm_st_n_meta(const dm_st_file *f)
{
    return f->n_meta;
}

const dm_st_meta *dm_st_meta_at(const dm_st_file *f, size_t i)
{
    return &f->meta[i];
}

const char *dm_st_meta_get(const dm_st_file *f, const char *key)
{
    dm_st_meta k = {.key = (char *)key};
    if (f->n_meta == 0)
        return NULL;
    const dm_st_meta *m = bsearch(&k, f->meta, f->n_meta, sizeof(*f->meta), cmp_meta_key);
    return m != NULL ? m->value : NULL;
}
