/*
 * footprint.c - in-memory table of learned footprints (see footprint.h).
 *
 * A flat array searched linearly: a machine runs a handful of models, and
 * the table is capped at PLAN_FOOTPRINTS_MAX entries. When full, the entry
 * recorded longest ago is replaced. The backing store's hooks run outside
 * any use of the entries array (a source may load into the table).
 */
#include "plan/footprint.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct fp_entry {
    char *model_id;
    char *config_key;
    uint64_t seq; /* order of recording, for eviction */
    plan_demand demand;
};

struct plan_footprints {
    struct fp_entry *entries;
    size_t n, cap;
    uint64_t next_seq;
    plan_fp_source_fn source;
    plan_fp_sink_fn sink;
    void *backing_arg;
};

plan_footprints *plan_footprints_new(void)
{
    return mem_calloc(1, sizeof(plan_footprints));
}

static void entry_clear(struct fp_entry *e)
{
    mem_free(e->model_id);
    mem_free(e->config_key);
    e->model_id = NULL;
    e->config_key = NULL;
}

void plan_footprints_free(plan_footprints *fp)
{
    if (fp == NULL)
        return;
    for (size_t i = 0; i < fp->n; i++)
        entry_clear(&fp->entries[i]);
    mem_free(fp->entries);
    mem_free(fp);
}

static struct fp_entry *find(const plan_footprints *fp, const char *model_id,
                             const char *config_key)
{
    for (size_t i = 0; i < fp->n; i++) {
        struct fp_entry *e = &fp->entries[i];
        if (strcmp(e->model_id, model_id) == 0 && strcmp(e->config_key, config_key) == 0)
            return e;
    }
    return NULL;
}

static int key_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) < PLAN_KEY_MAX;
}

void plan_footprints_set_backing(plan_footprints *fp, plan_fp_source_fn source,
                                 plan_fp_sink_fn sink, void *arg)
{
    fp->source = source;
    fp->sink = sink;
    fp->backing_arg = source != NULL || sink != NULL ? arg : NULL;
}

int plan_footprints_load(plan_footprints *fp, const char *model_id, const char *config_key,
                         const plan_demand *d, genai_error *err)
{
    if (fp == NULL || d == NULL || !key_ok(model_id) || !key_ok(config_key))
        return err_set(err, GENAI_EBAD_ARG, "footprint keys must be 1..%d bytes", PLAN_KEY_MAX - 1);

    struct fp_entry *e = find(fp, model_id, config_key);
    if (e == NULL) {
        char *mid = mem_strdup(model_id);
        char *ckey = mem_strdup(config_key);
        if (mid == NULL || ckey == NULL) {
            mem_free(mid);
            mem_free(ckey);
            return err_errno(err, ENOMEM, "recording a footprint");
        }
        if (fp->n == fp->cap && fp->cap < PLAN_FOOTPRINTS_MAX) {
            size_t cap = fp->cap ? fp->cap * 2 : 8;
            if (cap > PLAN_FOOTPRINTS_MAX)
                cap = PLAN_FOOTPRINTS_MAX;
            struct fp_entry *grown = mem_reallocarray(fp->entries, cap, sizeof(*grown));
            if (grown == NULL) {
                mem_free(mid);
                mem_free(ckey);
                return err_errno(err, ENOMEM, "recording a footprint");
            }
            fp->entries = grown;
            fp->cap = cap;
        }
        if (fp->n < fp->cap) {
            e = &fp->entries[fp->n++];
        } else {
            e = &fp->entries[0];
            for (size_t i = 1; i < fp->n; i++) {
                if (fp->entries[i].seq < e->seq)
                    e = &fp->entries[i];
            }
            entry_clear(e);
        }
        e->model_id = mid;
        e->config_key = ckey;
    }
    e->demand = *d;
    e->demand.tier = PLAN_TIER_MEASURED;
    e->seq = fp->next_seq++;
    return 0;
}

int plan_footprints_record(plan_footprints *fp, const char *model_id, const char *config_key,
                           const plan_demand *d, genai_error *err)
{
    int rc = plan_footprints_load(fp, model_id, config_key, d, err);
    if (rc == 0 && fp->sink != NULL) {
        plan_demand stored = *d;
        stored.tier = PLAN_TIER_MEASURED;
        fp->sink(fp->backing_arg, model_id, config_key, &stored);
    }
    return rc;
}

int plan_footprints_lookup(const plan_footprints *fp, const char *model_id, const char *config_key,
                           plan_demand *out)
{
    if (fp == NULL || model_id == NULL || config_key == NULL)
        return 0;
    const struct fp_entry *e = find(fp, model_id, config_key);
    if (e != NULL) {
        *out = e->demand;
        return 1;
    }
    if (fp->source == NULL)
        return 0;
    plan_demand d;
    if (fp->source(fp->backing_arg, model_id, config_key, &d) != 1)
        return 0;
    d.tier = PLAN_TIER_MEASURED;
    *out = d;
    return 1;
}

size_t plan_footprints_count(const plan_footprints *fp)
{
    return fp != NULL ? fp->n : 0;
}

int plan_llm_config_key(const gguf_profile *p, const plan_llm_config *cfg, char *buf, size_t len,
                        genai_error *err)
{
    plan_llm_shape s;
    int rc = plan_llm_shape_resolve(p, cfg, &s, err);
    if (rc < 0)
        return rc;
    char split[PLAN_MAX_GPUS * 12 + 1] = "";
    size_t off = 0;
    for (uint32_t i = 0; i < cfg->n_gpus && s.gpu_units > 0; i++) {
        int n = snprintf(split + off, sizeof(split) - off, "%s%u", i ? "," : "", s.gpu_layers[i]);
        if (n < 0 || (size_t)n >= sizeof(split) - off)
            break;
        off += (size_t)n;
    }
    int n =
        snprintf(buf, len,
                 "ngl=%u c=%u np=%u kvu=%d ctk=%s ctv=%s fa=%d ub=%u mmap=%d cram=%u "
                 "nkvo=%d swa_full=%d gpus=%u split=%s mmproj=%llu",
                 s.gpu_units, s.n_ctx, s.n_seq, s.kv_unified, plan_cache_type_name(s.type_k),
                 plan_cache_type_name(s.type_v), s.flash_attn, s.n_ubatch, cfg->use_mmap != 0,
                 cfg->cache_ram_mib, cfg->no_kv_offload != 0, cfg->swa_full != 0,
                 s.gpu_units > 0 ? cfg->n_gpus : 0, split, (unsigned long long)cfg->mmproj_bytes);
    if (n < 0 || (size_t)n >= len)
        return err_set(err, GENAI_ETOO_LARGE, "configuration key longer than %zu bytes", len);
    return 0;
}

int plan_llm_demand(const plan_footprints *fp, const char *model_id, const gguf_profile *p,
                    const plan_llm_config *cfg, const plan_demand *dry_run, plan_demand *out,
                    genai_error *err)
{
    if (fp != NULL && model_id != NULL) {
        char key[PLAN_KEY_MAX];
        int rc = plan_llm_config_key(p, cfg, key, sizeof(key), err);
        if (rc < 0)
            return rc;
        if (plan_footprints_lookup(fp, model_id, key, out))
            return PLAN_TIER_MEASURED;
    }
    if (dry_run != NULL) {
        *out = *dry_run;
        return PLAN_TIER_DRY_RUN;
    }
    int rc = plan_llm_estimate(p, cfg, out, NULL, err);
    return rc < 0 ? rc : PLAN_TIER_ESTIMATE;
}
