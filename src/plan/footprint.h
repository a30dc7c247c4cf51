/*
 * footprint.h - learned footprints: what a process really used, kept so the
 * next plan for the same model and configuration uses the measurement
 * instead of an estimate (the MEASURED tier, contracts/memory.md §13.1).
 *
 * A footprint is keyed by two strings: the model identity (for example its
 * SHA-256, or path + size + mtime) and a configuration key (for LLMs,
 * plan_llm_config_key(); callers append the device identity, such as the GPU
 * names, when it matters). Recording the same key again replaces the old
 * value (the latest run wins: llama.cpp's allocator changes between builds).
 *
 * The table lives in memory, bounded to PLAN_FOOTPRINTS_MAX entries (the
 * oldest is evicted). A backing store may be attached
 * (plan_footprints_set_backing): its sink sees every record, and its source
 * answers lookups the table cannot. The model store attaches the registry
 * this way (store/footprint_db.h), so a footprint measured by one genai
 * process plans the next one; the planner itself knows nothing of SQLite.
 */
#ifndef GENAI_PLAN_FOOTPRINT_H
#define GENAI_PLAN_FOOTPRINT_H

#include "core/error.h"
#include "gguf/profile.h"
#include "plan/demand.h"
#include "plan/llm.h"

#include <stddef.h>

#define PLAN_FOOTPRINTS_MAX 256
#define PLAN_KEY_MAX 512

typedef struct plan_footprints plan_footprints;

/* A new, empty table; NULL on allocation failure. Free with
 * plan_footprints_free(). */
plan_footprints *plan_footprints_new(void);
/* Releases the table. Accepts NULL. */
void plan_footprints_free(plan_footprints *fp);

/* Stores a copy of d (its tier set to MEASURED) under (model_id,
 * config_key). GENAI_EBAD_ARG for an empty or too long key, -ENOMEM. */
int plan_footprints_record(plan_footprints *fp, const char *model_id, const char *config_key,
                           const plan_demand *d, genai_error *err);

/* 1 and a copy in *out when a footprint exists for the key, in the table or
 * (asked second) in the backing store's source, 0 when not. */
int plan_footprints_lookup(const plan_footprints *fp, const char *model_id, const char *config_key,
                           plan_demand *out);

/* Number of footprints held. */
size_t plan_footprints_count(const plan_footprints *fp);

/* A backing store's half that keeps records: called after each successful
 * plan_footprints_record with the keys and the value as stored (tier
 * MEASURED). It cannot fail the record; it reports its own failures. */
typedef void (*plan_fp_sink_fn)(void *arg, const char *model_id, const char *config_key,
                                const plan_demand *d);
/* A backing store's half that answers: called by plan_footprints_lookup when
 * the table holds no entry for the keys. Returns 1 with *out filled when the
 * store has a usable footprint, 0 when not (a corrupt one included). It may
 * cache what it found with plan_footprints_load. */
typedef int (*plan_fp_source_fn)(void *arg, const char *model_id, const char *config_key,
                                 plan_demand *out);

/* Attaches (or, with both functions NULL, detaches) a backing store; arg is
 * passed to both and borrowed until detached. Either function may be NULL. */
void plan_footprints_set_backing(plan_footprints *fp, plan_fp_source_fn source,
                                 plan_fp_sink_fn sink, void *arg);

/* Like plan_footprints_record but without calling the sink: for values that
 * come from the backing store (a bulk load, or a cached answer). */
int plan_footprints_load(plan_footprints *fp, const char *model_id, const char *config_key,
                         const plan_demand *d, genai_error *err);

/*
 * Writes a canonical text key for cfg into buf ("ngl=33 c=8192 np=4 kvu=1
 * ctk=f16 ..."), with every default resolved against p so that two configs
 * llama-server treats the same get the same key. Returns 0, or
 * GENAI_ETOO_LARGE when len is too small, or the errors of
 * plan_llm_shape_resolve.
 */
int plan_llm_config_key(const gguf_profile *p, const plan_llm_config *cfg, char *buf, size_t len,
                        genai_error *err);

/*
 * The best-tier demand for (p, cfg): the footprint under (model_id, key) when
 * fp holds one, else dry_run when not NULL, else plan_llm_estimate(). fp and
 * model_id may be NULL. Returns the tier used (>= 0) or a negative error.
 */
int plan_llm_demand(const plan_footprints *fp, const char *model_id, const gguf_profile *p,
                    const plan_llm_config *cfg, const plan_demand *dry_run, plan_demand *out,
                    genai_error *err);

#endif
