/*
 * footprint_db.c - learned footprints kept in the registry (see
 * footprint_db.h).
 *
 * The bridge is a source and a sink for a plan_footprints. The sink maps
 * the runtime's keys to a registered model and writes one row; the source
 * maps the same way, reads the row, decodes it and caches the demand in the
 * table (plan_footprints_load), so the registry is read once per key and
 * process. The model is found by listing the registered LLMs and comparing
 * their first file with the runtime's path by device and inode: a machine
 * holds a handful of models and this runs once per start, not per request.
 *
 * device_bytes_json, format 1 (all sizes in bytes, non-negative integers):
 *   {"format":1, "gpu":[N, ...], "host_growth":N,
 *    "gpu_parts":[{"weights":N,"kv":N,"compute":N,"output":N,
 *                  "prompt_cache":N,"runtime":N,"driver":N}, ...],
 *    "host_parts":{...same fields...}, "note":"..."}
 * gpu[i] is the GPU with index i in the probe snapshot; gpu_parts has one
 * entry per gpu entry. The row is untrusted on the way back: every field is
 * checked for type and range before a demand is built.
 */
#include "store/footprint_db.h"

#include "core/alloc.h"
#include "core/log.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MOD "store"
#define JSON_FORMAT 1
/* No process uses a pebibyte of one kind of memory: larger values in a row
 * are corruption (a negative column read back as unsigned, say). */
#define BYTES_MAX ((uint64_t)1 << 50)

struct store_fpdb {
    store *st;
    plan_footprints *fp;
    int own_fp;
    genai_error last;
};

/* ---- rows <-> demands -------------------------------------------------------- */

static const char *const part_names[] = {"weights",      "kv",      "compute", "output",
                                         "prompt_cache", "runtime", "driver"};
#define N_PARTS (sizeof(part_names) / sizeof(part_names[0]))

static uint64_t *part_field(plan_breakdown *b, size_t i)
{
    uint64_t *const f[N_PARTS] = {&b->weights,      &b->kv,      &b->compute, &b->output,
                                  &b->prompt_cache, &b->runtime, &b->driver};
    return f[i];
}

/* Sets key of obj to v; 0, or -1 when out of memory. */
static int set_u64(json_t *obj, const char *key, uint64_t v)
{
    return json_object_set_new(obj, key, json_integer((json_int_t)v));
}

static json_t *parts_json(const plan_breakdown *b)
{
    json_t *o = json_object();
    plan_breakdown copy = *b;
    for (size_t i = 0; o != NULL && i < N_PARTS; i++) {
        if (set_u64(o, part_names[i], *part_field(&copy, i)) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

int store_fpdb_to_json(const plan_demand *d, char **out, genai_error *err)
{
    json_t *root = json_object();
    json_t *gpu = json_array();
    json_t *parts = json_array();
    json_t *host = parts_json(&d->host_parts);
    char *text = NULL;
    int rc = -ENOMEM;
    if (root == NULL || gpu == NULL || parts == NULL || host == NULL)
        goto out;
    uint32_t n = d->n_gpus < PLAN_MAX_GPUS ? d->n_gpus : PLAN_MAX_GPUS;
    for (uint32_t i = 0; i < n; i++) {
        if (json_array_append_new(gpu, json_integer((json_int_t)d->gpu[i])) < 0 ||
            json_array_append_new(parts, parts_json(&d->gpu_parts[i])) < 0)
            goto out;
    }
    if (set_u64(root, "format", JSON_FORMAT) < 0 || json_object_set(root, "gpu", gpu) < 0 ||
        set_u64(root, "host_growth", d->host_growth) < 0 ||
        json_object_set(root, "gpu_parts", parts) < 0 ||
        json_object_set(root, "host_parts", host) < 0 ||
        json_object_set_new(root, "note", json_string(d->note)) < 0)
        goto out;
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL)
        goto out;
    *out = mem_strdup(text);
    rc = *out != NULL ? 0 : -ENOMEM;
out:
    free(text); /* jansson's allocator */
    json_decref(host);
    json_decref(parts);
    json_decref(gpu);
    json_decref(root);
    return rc < 0 ? err_errno(err, ENOMEM, "encoding a footprint") : 0;
}

/* The bytes held by v, which must be an integer in [0, BYTES_MAX]. */
static int get_bytes(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > BYTES_MAX)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Fills b from an object with every breakdown field; the failing field's
 * name in *bad. */
static int get_parts(const json_t *o, plan_breakdown *b, const char **bad)
{
    if (!json_is_object(o)) {
        *bad = "is not an object";
        return -1;
    }
    for (size_t i = 0; i < N_PARTS; i++) {
        if (get_bytes(json_object_get(o, part_names[i]), part_field(b, i)) < 0) {
            *bad = part_names[i];
            return -1;
        }
    }
    return 0;
}

int store_fpdb_from_row(const store_footprint *row, plan_demand *out, genai_error *err)
{
    const char *mid = row->model_id != NULL ? row->model_id : "?";
    const char *key = row->config_key != NULL ? row->config_key : "?";
    const char *text = row->device_bytes_json;
    json_error_t je;
    json_t *root = NULL;
    int rc = GENAI_ECORRUPT;
    plan_demand d;
    memset(&d, 0, sizeof(d));
    genai_error why;
    genai_error_clear(&why);

    if (text == NULL || strlen(text) > STORE_FPDB_JSON_MAX) {
        err_set(&why, rc, "device bytes missing or over %d bytes", STORE_FPDB_JSON_MAX);
        goto fail;
    }
    if (row->host_anon > BYTES_MAX || row->host_file > BYTES_MAX) {
        err_set(&why, rc, "host bytes out of range");
        goto fail;
    }
    root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        err_set(&why, rc, "device bytes are not JSON (%s at offset %d)", je.text, je.position);
        goto fail;
    }
    const json_t *fmt = json_object_get(root, "format");
    if (!json_is_object(root) || !json_is_integer(fmt) || json_integer_value(fmt) != JSON_FORMAT) {
        err_set(&why, rc, "device bytes are not a format %d object", JSON_FORMAT);
        goto fail;
    }
    const json_t *gpu = json_object_get(root, "gpu");
    const json_t *parts = json_object_get(root, "gpu_parts");
    if (!json_is_array(gpu) || json_array_size(gpu) > PLAN_MAX_GPUS || !json_is_array(parts) ||
        json_array_size(parts) != json_array_size(gpu)) {
        err_set(&why, rc, "\"gpu\" and \"gpu_parts\" must be arrays of the same length, at most %d",
                PLAN_MAX_GPUS);
        goto fail;
    }
    d.n_gpus = (uint32_t)json_array_size(gpu);
    const char *bad = NULL;
    for (uint32_t i = 0; i < d.n_gpus; i++) {
        if (get_bytes(json_array_get(gpu, i), &d.gpu[i]) < 0) {
            err_set(&why, rc, "gpu[%u] is not a size in bytes", i);
            goto fail;
        }
        if (get_parts(json_array_get(parts, i), &d.gpu_parts[i], &bad) < 0) {
            err_set(&why, rc, "gpu_parts[%u]: %s is not a size in bytes", i, bad);
            goto fail;
        }
    }
    if (get_parts(json_object_get(root, "host_parts"), &d.host_parts, &bad) < 0) {
        err_set(&why, rc, "host_parts: %s is not a size in bytes", bad);
        goto fail;
    }
    if (get_bytes(json_object_get(root, "host_growth"), &d.host_growth) < 0 ||
        d.host_growth > row->host_anon) {
        err_set(&why, rc, "host_growth is not a size within host_anon");
        goto fail;
    }
    const json_t *note = json_object_get(root, "note");
    if (note != NULL && !json_is_string(note)) {
        err_set(&why, rc, "note is not a string");
        goto fail;
    }
    if (row->runtime_build != NULL && strlen(row->runtime_build) >= sizeof(d.build)) {
        err_set(&why, rc, "runtime build longer than %zu bytes", sizeof(d.build) - 1);
        goto fail;
    }
    d.host_anon = row->host_anon;
    d.host_file = row->host_file;
    d.tier = PLAN_TIER_MEASURED;
    if (row->runtime_build != NULL)
        snprintf(d.build, sizeof(d.build), "%s", row->runtime_build);
    plan_demand_set_note(&d, "%s", note != NULL ? json_string_value(note) : "from the registry");
    json_decref(root);
    *out = d;
    return 0;

fail:
    json_decref(root);
    return err_set(err, rc, "footprint row of model '%s' [%s] refused: %s", mid, key, why.detail);
}

/* ---- keys ------------------------------------------------------------------- */

/* Splits "PATH size=N mtime=M dev=DEVICES" (the runtime's model identity):
 * the path's length, the size and the suffix from " mtime=". The last
 * " size=" is taken: a path may contain one, a device name does not. */
static int split_model_key(const char *mk, size_t *path_len, uint64_t *size, const char **tail)
{
    const char *at = NULL;
    for (const char *p = strstr(mk, " size="); p != NULL; p = strstr(p + 1, " size="))
        at = p;
    if (at == NULL || at == mk)
        return -1;
    const char *num = at + strlen(" size=");
    char *end;
    errno = 0;
    unsigned long long n = strtoull(num, &end, 10);
    if (errno != 0 || end == num || strncmp(end, " mtime=", 7) != 0)
        return -1;
    const char *suffix = end + 1; /* "mtime=..." */
    const char *mt = end + 7;
    errno = 0;
    (void)strtoll(mt, &end, 10);
    if (errno != 0 || end == mt || strncmp(end, " dev=", 5) != 0 || end[5] == '\0')
        return -1;
    *path_len = (size_t)(at - mk);
    *size = (uint64_t)n;
    *tail = suffix;
    return 0;
}

int store_fpdb_map(store_fpdb *b, const char *model_key, const char *config_key, char *id,
                   size_t idsz, char *key, size_t keysz, genai_error *err)
{
    size_t plen;
    uint64_t size;
    const char *tail;
    if (model_key == NULL || config_key == NULL ||
        split_model_key(model_key, &plen, &size, &tail) < 0)
        return err_set(err, GENAI_EBAD_ARG, "model key '%.200s' is not 'PATH size=N mtime=M dev=D'",
                       model_key != NULL ? model_key : "");
    char *path = mem_alloc(plen + 1);
    if (path == NULL)
        return err_errno(err, ENOMEM, "model key");
    memcpy(path, model_key, plen);
    path[plen] = '\0';

    int rc;
    struct stat want;
    store_model *all = NULL;
    size_t n = 0;
    if (stat(path, &want) != 0) {
        rc = err_errno(err, errno, "stat %s", path);
        goto out;
    }
    if ((rc = store_db_list_models(store_registry(b->st), &all, &n, err)) < 0)
        goto out;
    rc = err_set(err, GENAI_ENOT_FOUND, "%s is not a registered LLM", path);
    for (size_t i = 0; i < n; i++) {
        const store_model *m = &all[i];
        struct stat st;
        if (m->kind != STORE_KIND_LLM || m->n_files == 0 || stat(m->files[0].path, &st) != 0 ||
            st.st_dev != want.st_dev || st.st_ino != want.st_ino)
            continue;
        if ((uint64_t)st.st_size != size || m->files[0].size != size) {
            rc = err_set(err, GENAI_ENOT_FOUND, "%s changed since it was registered as '%s'", path,
                         m->id);
            break;
        }
        int kn = snprintf(key, keysz, "%s %s", config_key, tail);
        if ((size_t)snprintf(id, idsz, "%s", m->id) >= idsz || kn < 0 || (size_t)kn >= keysz)
            rc = err_set(err, GENAI_ETOO_LARGE, "footprint key of '%s' too long", m->id);
        else
            rc = 0;
        break;
    }
out:
    store_model_list_free(all, n);
    mem_free(path);
    return rc;
}

/* ---- the hooks -------------------------------------------------------------- */

static void sink(void *arg, const char *model_key, const char *config_key, const plan_demand *d)
{
    store_fpdb *b = arg;
    char id[256], key[STORE_FPDB_KEY_MAX];
    genai_error e;
    int rc = store_fpdb_map(b, model_key, config_key, id, sizeof(id), key, sizeof(key), &e);
    if (rc == GENAI_ENOT_FOUND) {
        LOG_DEBUG(MOD, "footprint kept in memory only: %s", e.detail);
        return;
    }
    char *json = NULL;
    if (rc == 0)
        rc = store_fpdb_to_json(d, &json, &e);
    if (rc == 0) {
        store_footprint row = {.model_id = id,
                               .config_key = key,
                               .device_bytes_json = json,
                               .host_anon = d->host_anon,
                               .host_file = d->host_file,
                               .runtime_build = d->build[0] != '\0' ? (char *)d->build : NULL};
        rc = store_db_put_footprint(store_registry(b->st), &row, &e);
    }
    mem_free(json);
    if (rc < 0) {
        b->last = e;
        LOG_WARN(MOD, "footprint not stored in the registry: %s", e.detail);
    } else {
        LOG_INFO(MOD, "footprint of '%s' stored [%s]", id, key);
    }
}

static int source(void *arg, const char *model_key, const char *config_key, plan_demand *out)
{
    store_fpdb *b = arg;
    char id[256], key[STORE_FPDB_KEY_MAX];
    genai_error e;
    store_footprint row;
    plan_demand d;
    if (store_fpdb_map(b, model_key, config_key, id, sizeof(id), key, sizeof(key), &e) < 0)
        return 0;
    int rc = store_db_get_footprint(store_registry(b->st), id, key, &row, &e);
    if (rc == GENAI_ENOT_FOUND)
        return 0;
    if (rc == 0) {
        rc = store_fpdb_from_row(&row, &d, &e);
        store_footprint_free(&row);
    }
    if (rc < 0) {
        b->last = e;
        LOG_WARN(MOD, "%s", e.detail);
        return 0;
    }
    /* Cache it: the next lookup of this key does not read the registry. A
     * failure to cache costs only that. */
    (void)plan_footprints_load(b->fp, model_key, config_key, &d, NULL);
    *out = d;
    return 1;
}

/* ---- lifetime --------------------------------------------------------------- */

int store_fpdb_open(const char *data_dir, plan_footprints *fp, store_fpdb **out, genai_error *err)
{
    store_fpdb *b = mem_calloc(1, sizeof(*b));
    if (b == NULL)
        return err_errno(err, ENOMEM, "footprint registry");
    b->fp = fp;
    if (fp == NULL) {
        b->fp = plan_footprints_new();
        b->own_fp = 1;
        if (b->fp == NULL) {
            mem_free(b);
            return err_errno(err, ENOMEM, "footprint table");
        }
    }
    int rc = data_dir != NULL ? store_open_at(data_dir, &b->st, err) : store_open(&b->st, err);
    if (rc < 0) {
        if (b->own_fp)
            plan_footprints_free(b->fp);
        mem_free(b);
        return rc;
    }
    plan_footprints_set_backing(b->fp, source, sink, b);
    *out = b;
    return 0;
}

void store_fpdb_close(store_fpdb *b)
{
    if (b == NULL)
        return;
    plan_footprints_set_backing(b->fp, NULL, NULL, NULL);
    if (b->own_fp)
        plan_footprints_free(b->fp);
    store_close(b->st);
    mem_free(b);
}

plan_footprints *store_fpdb_table(store_fpdb *b)
{
    return b->fp;
}

const genai_error *store_fpdb_last_error(const store_fpdb *b)
{
    return &b->last;
}
