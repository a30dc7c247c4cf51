/*
 * model.c - a GGUF model as one file or a split set of shards.
 *
 * llama.cpp's gguf-split writes shards named PREFIX-00001-of-0000N.gguf
 * (llama_split_path: "%s-%05d-of-%05d.gguf", 1-based) and stores in every
 * shard split.no (0-based, uint16), split.count (uint16) and, in the first,
 * split.tensors.count (int32, the total). The metadata that describes the
 * model lives in the first shard; the tensors are spread over all of them.
 * gguf_model_open() derives the sibling names from the name it is given, opens
 * and parses each shard, and checks that the set is complete and consistent.
 */
#include "gguf/gguf.h"
#include "gguf/gguf_int.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct gguf_model {
    gguf_file **files;
    uint32_t n_files;
    uint64_t *first; /* first[i] = index of shard i's first tensor in the model */
    uint64_t n_tensors;
    uint64_t file_bytes;
};

#define SPLIT_SUFFIX_LEN 20 /* "-NNNNN-of-MMMMM.gguf" */

static int parse5(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    *out = v;
    return 1;
}

int gguf_split_name_parse(const char *path, size_t *prefix_len, uint32_t *no, uint32_t *count)
{
    size_t len = strlen(path);
    if (len <= SPLIT_SUFFIX_LEN)
        return 0;
    const char *s = path + len - SPLIT_SUFFIX_LEN;
    uint32_t a, b;
    if (s[0] != '-' || !parse5(s + 1, &a) || memcmp(s + 6, "-of-", 4) != 0 || !parse5(s + 10, &b) ||
        memcmp(s + 15, ".gguf", 5) != 0)
        return 0;
    if (a == 0 || b == 0 || a > b || s[-1] == '/')
        return 0;
    *prefix_len = len - SPLIT_SUFFIX_LEN;
    *no = a;
    *count = b;
    return 1;
}

void gguf_model_free(gguf_model *m)
{
    if (m == NULL)
        return;
    for (uint32_t i = 0; i < m->n_files; i++)
        gguf_close(m->files[i]);
    mem_free(m->files);
    mem_free(m->first);
    mem_free(m);
}

static gguf_model *model_new(uint32_t n)
{
    gguf_model *m = mem_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->files = mem_calloc(n, sizeof(*m->files));
    m->first = mem_calloc(n, sizeof(*m->first));
    if (m->files == NULL || m->first == NULL) {
        gguf_model_free(m);
        return NULL;
    }
    return m;
}

/* Adds up the tensors and sizes once every shard is in place. */
static void model_totals(gguf_model *m)
{
    m->n_tensors = 0;
    m->file_bytes = 0;
    for (uint32_t i = 0; i < m->n_files; i++) {
        gguf_file_set_split(m->files[i], i);
        m->first[i] = m->n_tensors;
        m->n_tensors += gguf_n_tensors(m->files[i]);
        m->file_bytes += gguf_file_size(m->files[i]);
    }
}

int gguf_model_from_file(gguf_file *f, gguf_model **out, genai_error *err)
{
    gguf_model *m = model_new(1);
    if (m == NULL) {
        gguf_close(f);
        return err_set(err, -ENOMEM, "out of memory");
    }
    m->files[0] = f;
    m->n_files = 1;
    model_totals(m);
    *out = m;
    return 0;
}

/* An integer split.* key; *out = UINT64_MAX when absent. */
static int split_key(const gguf_file *f, const char *key, uint64_t *out, genai_error *err)
{
    int64_t v;
    int rc = gguf_get_i64(f, key, &v, err);
    if (rc == GENAI_ENOT_FOUND) {
        *out = UINT64_MAX;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (v < 0)
        return err_set(err, GENAI_ECORRUPT, "%s = %" PRId64 " is negative", key, v);
    *out = (uint64_t)v;
    return 0;
}

/* Checks shard i of an n-shard set and, for the last one, the tensor total. */
static int check_shard(gguf_model *m, uint32_t i, uint32_t n, genai_error *err)
{
    const gguf_file *f = m->files[i];
    uint64_t count = 0, no = 0;
    int rc;
    if ((rc = split_key(f, "split.count", &count, err)) < 0 ||
        (rc = split_key(f, "split.no", &no, err)) < 0)
        return rc;
    if (count != n)
        return count == UINT64_MAX
                   ? err_set(err, GENAI_ECORRUPT, "split.count missing in a set of %" PRIu32, n)
                   : err_set(err, GENAI_ECORRUPT,
                             "split.count is %" PRIu64 ", the set has %" PRIu32, count, n);
    if (no != i)
        return no == UINT64_MAX ? err_set(err, GENAI_ECORRUPT, "split.no missing")
                                : err_set(err, GENAI_ECORRUPT,
                                          "split.no is %" PRIu64 ", expected %" PRIu32, no, i);
    /* Tensor names are unique across the whole set. */
    for (uint64_t t = 0; t < gguf_n_tensors(f); t++) {
        const gguf_tensor *ti = gguf_tensor_at(f, t);
        for (uint32_t j = 0; j < i; j++)
            if (gguf_find_tensor_n(m->files[j], ti->name.ptr, ti->name.len) != NULL)
                return err_set(err, GENAI_ECORRUPT, "tensor '%.*s' also in shard %" PRIu32,
                               (int)ti->name.len, ti->name.ptr, j + 1);
    }
    return 0;
}

static int open_split(const char *path, size_t prefix_len, uint32_t n, gguf_model **out,
                      genai_error *err)
{
    if (n > GGUF_MAX_SPLITS)
        return err_set(err, GENAI_ETOO_LARGE, "%s: %" PRIu32 " shards exceed the limit %u", path, n,
                       GGUF_MAX_SPLITS);
    gguf_model *m = model_new(n);
    size_t cap = prefix_len + SPLIT_SUFFIX_LEN + 1;
    char *name = mem_alloc(cap);
    int rc = 0;
    if (m == NULL || name == NULL) {
        rc = err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < n; i++) {
        snprintf(name, cap, "%.*s-%05" PRIu32 "-of-%05" PRIu32 ".gguf", (int)prefix_len, path,
                 i + 1, n);
        if ((rc = gguf_open(name, &m->files[i], err)) < 0)
            goto fail;
        m->n_files = i + 1;
        if ((rc = check_shard(m, i, n, err)) < 0) {
            err_prefix(err, "%s", name);
            goto fail;
        }
    }
    model_totals(m);
    uint64_t total = 0;
    if ((rc = split_key(m->files[0], "split.tensors.count", &total, err)) < 0)
        goto fail;
    if (total != UINT64_MAX && total != m->n_tensors) {
        rc = err_set(err, GENAI_ECORRUPT,
                     "%s: split.tensors.count is %" PRIu64 " but the %" PRIu32
                     " shards hold %" PRIu64 " tensors",
                     path, total, n, m->n_tensors);
        goto fail;
    }
    mem_free(name);
    *out = m;
    return 0;
fail:
    mem_free(name);
    gguf_model_free(m);
    return rc;
}

int gguf_model_open(const char *path, gguf_model **out, genai_error *err)
{
    size_t prefix_len;
    uint32_t no, count;
    if (gguf_split_name_parse(path, &prefix_len, &no, &count) && count > 1)
        return open_split(path, prefix_len, count, out, err);

    gguf_file *f;
    int rc = gguf_open(path, &f, err);
    if (rc < 0)
        return rc;
    uint64_t n = 0;
    if ((rc = split_key(f, "split.count", &n, err)) < 0) {
        err_prefix(err, "%s", path);
        gguf_close(f);
        return rc;
    }
    if (n != UINT64_MAX && n > 1) {
        gguf_close(f);
        return err_set(err, GENAI_EUNSUPPORTED,
                       "%s: shard of a %" PRIu64 "-file split set whose name does not follow "
                       "PREFIX-NNNNN-of-%05" PRIu64 ".gguf, so its siblings cannot be found",
                       path, n, n);
    }
    return gguf_model_from_file(f, out, err);
}

uint32_t gguf_model_n_files(const gguf_model *m)
{
    return m->n_files;
}

const gguf_file *gguf_model_file(const gguf_model *m, uint32_t i)
{
    return i < m->n_files ? m->files[i] : NULL;
}

uint64_t gguf_model_n_tensors(const gguf_model *m)
{
    return m->n_tensors;
}

const gguf_tensor *gguf_model_tensor(const gguf_model *m, uint64_t i)
{
    if (i >= m->n_tensors)
        return NULL;
    uint32_t s = m->n_files - 1;
    while (m->first[s] > i)
        s--;
    return gguf_tensor_at(m->files[s], i - m->first[s]);
}

uint64_t gguf_model_file_bytes(const gguf_model *m)
{
    return m->file_bytes;
}
