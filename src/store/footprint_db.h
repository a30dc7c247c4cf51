/*
 * footprint_db.h - learned footprints kept in the model registry: the bridge
 * between the planner's table (plan/footprint.h) and the registry's
 * footprints rows (store/registry.h).
 *
 * store_fpdb_open attaches the registry to a plan_footprints as its backing
 * store. From then on every footprint the LLM runtime records (at READY) is
 * also written to the registry, and a lookup the table cannot answer reads
 * the registry, so a new genai process plans with what the last one
 * measured (tier MEASURED, contracts/memory.md §13.1).
 *
 * Keys. The runtime keys a footprint by its model identity,
 * "PATH size=N mtime=M dev=DEVICES" (llm/runtime.c, model_identity), and
 * the configuration key of plan_llm_config_key(). The registry keys it by
 * the registered model's id and a text key. The mapping:
 *   model_id   = the id of the registered LLM whose first file is PATH (the
 *                same file by device and inode, so relative paths and
 *                symlinks match) and whose size on disk is still N;
 *   config_key = "<configuration key> mtime=M dev=DEVICES".
 * The modification time stays in the key, as it does in the runtime's, so a
 * file rewritten in place never inherits an old measurement. A file that is
 * not a registered model is not persisted (its footprints stay in memory).
 *
 * Rows: device_bytes_json holds the demand's per-device figures and its
 * breakdown (store_fpdb_to_json); host_anon and host_file are columns.
 * A row that does not decode (bad JSON, a wrong shape, an implausible size)
 * is refused with GENAI_ECORRUPT naming the row, logged, and treated as
 * absent: the planner falls back to the next tier.
 *
 * Threading: the hooks run on the thread that records and looks up (the
 * loop thread in genai); each is one short SQLite statement (the registry's
 * 5 s busy timeout bounds a wait for another process's write).
 */
#ifndef GENAI_STORE_FOOTPRINT_DB_H
#define GENAI_STORE_FOOTPRINT_DB_H

#include "core/error.h"
#include "plan/demand.h"
#include "plan/footprint.h"
#include "store/registry.h"

#include <stddef.h>

/* Longest registry configuration key written (the runtime's key, mtime and
 * device names). */
#define STORE_FPDB_KEY_MAX 1024
/* Largest device_bytes_json accepted from a row. */
#define STORE_FPDB_JSON_MAX (64 * 1024)

typedef struct store_fpdb store_fpdb;

/*
 * Opens the registry in data_dir (NULL: the data folder of paths_resolve,
 * as store_open) and attaches it to fp as its backing store. fp is borrowed
 * and must outlive the bridge; fp NULL: the bridge makes a table of its own
 * (store_fpdb_table) and frees it on close. Close with store_fpdb_close,
 * which detaches. Errors: those of store_open, -ENOMEM.
 */
int store_fpdb_open(const char *data_dir, plan_footprints *fp, store_fpdb **out, genai_error *err);

/* Detaches from the table and closes the registry (and frees the table
 * when the bridge made it). Accepts NULL. */
void store_fpdb_close(store_fpdb *b);

/* The table the bridge backs (borrowed from the caller or its own). */
plan_footprints *store_fpdb_table(store_fpdb *b);

/* The last failure of a hook (a corrupt row, a refused write), code 0 when
 * none yet. Owned by the bridge. */
const genai_error *store_fpdb_last_error(const store_fpdb *b);

/*
 * Maps the runtime's keys to the registry's: the registered model id into
 * id (size idsz) and the registry configuration key into key (size keysz).
 * GENAI_ENOT_FOUND when the file is not a registered LLM, GENAI_EBAD_ARG
 * for a model key not in the runtime's form, GENAI_ETOO_LARGE.
 */
int store_fpdb_map(store_fpdb *b, const char *model_key, const char *config_key, char *id,
                   size_t idsz, char *key, size_t keysz, genai_error *err);

/* The JSON text of d for device_bytes_json (format 1). *out is freed by the
 * caller with mem_free. -ENOMEM. */
int store_fpdb_to_json(const plan_demand *d, char **out, genai_error *err);

/* Decodes a registry row into a demand (tier MEASURED); *out is written
 * only on success. GENAI_ECORRUPT with the row and the fault in the detail. */
int store_fpdb_from_row(const store_footprint *row, plan_demand *out, genai_error *err);

#endif
