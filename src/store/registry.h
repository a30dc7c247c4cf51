/*
 * registry.h - the model registry: an SQLite database in the data folder.
 *
 * Tables (schema version STORE_SCHEMA_VERSION, kept in PRAGMA user_version and
 * upgraded by numbered migrations on open):
 *   models      one row per model: id, display name, kind (llm, diffusion),
 *               source URL, Hugging Face repo and pinned commit, SHA-256 of
 *               the main file, total size, when it was added, cached GGUF
 *               profile (JSON text); for diffusion models (version 3) the
 *               family detection made when the model was registered
 *               (dm_detection_to_json) and the owner's settings override
 *               (a dm_settings_override object, validated before it is
 *               stored: store_set_settings in store.h);
 *   files       the files of a model in order: LLM shards (role "model"),
 *               or a diffusion model's components by role. The roles are
 *               those of diffusion/model_file.h, one vocabulary for the
 *               registry, the job flow and sd-cli's flags: "model", "clip_l",
 *               "clip_g", "t5xxl", "vae". Rows written before version 3 may
 *               carry "text_encoder", which names no encoder: such a model
 *               is refused at job time until it is added again with
 *               --clip-l / --clip-g / --t5xxl;
 *   footprints  learned memory use: (model, configuration key) -> bytes per
 *               device (JSON text), host anonymous and file-backed bytes,
 *               when it was measured, and by which runtime build.
 *
 * Invariant: a row only points at files that are complete and verified. The
 * store renames a file into place before the transaction that registers it
 * commits, and store_db_put_model checks every file's size on disk first.
 *
 * Concurrency: one connection per process (WAL journal, 5 s busy timeout);
 * every write is one BEGIN IMMEDIATE transaction, so the CLI and the daemon
 * can use the same database at once. A store_db may be shared by the threads
 * of a process: calls are serialized by a mutex.
 */
#ifndef GENAI_STORE_REGISTRY_H
#define GENAI_STORE_REGISTRY_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 3

typedef struct store_db store_db;

typedef enum store_kind { STORE_KIND_LLM = 0, STORE_KIND_DIFFUSION = 1 } store_kind;

/* "llm" or "diffusion"; static. */
const char *store_kind_name(store_kind kind);
/* Parses "llm"/"diffusion"; GENAI_EBAD_ARG otherwise. */
int store_kind_parse(const char *text, store_kind *out);
/* True for the roles a file may have (see the top of this file). */
int store_role_valid(const char *role);

typedef struct store_file {
    char *role;   /* "model", "vae", ... */
    char *path;   /* absolute path of the complete, verified file */
    char *sha256; /* 64 lowercase hex digits */
    uint64_t size;
    char *url;   /* where it came from; NULL for files added in place */
    int managed; /* 1: the store owns the file (rm deletes it) */
} store_file;

typedef struct store_model {
    char *id;   /* short unique name used on the command line */
    char *name; /* display name */
    store_kind kind;
    char *source_url;     /* what the user pulled; NULL for `add` */
    char *hf_repo;        /* "owner/repo" or NULL */
    char *hf_revision;    /* pinned commit or NULL */
    char *sha256;         /* digest of files[0] */
    uint64_t size;        /* sum of the file sizes */
    int64_t added_at;     /* Unix seconds */
    char *profile_json;   /* cached GGUF profile, NULL when none */
    char *detection_json; /* diffusion: family detection at registration, or NULL */
    char *settings_json;  /* diffusion: the settings override, or NULL */
    store_file *files;
    size_t n_files;
} store_model;

/* Releases what the members point to (not m itself); accepts NULL. */
void store_model_free(store_model *m);
/* Frees an array from store_db_list_models; accepts NULL. */
void store_model_list_free(store_model *models, size_t n);

typedef struct store_footprint {
    char *model_id;
    char *config_key;        /* the launch configuration, as text */
    char *device_bytes_json; /* e.g. {"cuda0": 7340032000} */
    uint64_t host_anon;
    uint64_t host_file;
    int64_t measured_at; /* Unix seconds */
    char *runtime_build; /* the measured build, /props build_info ("b11669-Debian"); NULL: unknown */
} store_footprint;

/* Releases the members (not f); accepts NULL. */
void store_footprint_free(store_footprint *f);

/* Opens (creating if needed) the database at path and upgrades its schema to
 * STORE_SCHEMA_VERSION. GENAI_EUNSUPPORTED when a newer genai wrote it. Close
 * with store_db_close. */
int store_db_open(const char *path, store_db **out, genai_error *err);
/* Like store_db_open but upgrades only to version `target` (tests of the
 * migrations); target must be 1..STORE_SCHEMA_VERSION. */
int store_db_open_at(const char *path, int target, store_db **out, genai_error *err);
/* Closes the connection; accepts NULL. */
void store_db_close(store_db *db);
/* The schema version of the open database (PRAGMA user_version). */
int store_db_version(store_db *db, genai_error *err);

/* Registers m and its files in one transaction. GENAI_EBUSY when the id is
 * taken, GENAI_EBAD_ARG for a bad kind/role/digest, GENAI_ECORRUPT when a
 * file is missing or its size differs from the row. */
int store_db_put_model(store_db *db, const store_model *m, genai_error *err);
/* Loads one model with its files into *out (free with store_model_free).
 * GENAI_ENOT_FOUND when there is no such id. */
int store_db_get_model(store_db *db, const char *id, store_model *out, genai_error *err);
/* All models ordered by id, with their files; *out freed with
 * store_model_list_free (NULL and 0 when empty). */
int store_db_list_models(store_db *db, store_model **out, size_t *n, genai_error *err);
/* Deletes a model's rows (files and footprints too). When removed is not
 * NULL it receives the rows as they were (free with store_model_free), so
 * the caller can delete the files afterwards; a file that another model
 * still lists comes back with managed = 0, so it is not deleted under that
 * model. GENAI_ENOT_FOUND if absent. */
int store_db_remove_model(store_db *db, const char *id, store_model *removed, genai_error *err);
/* Stores (or clears, with NULL) the cached profile JSON of a model. */
int store_db_set_profile(store_db *db, const char *id, const char *profile_json, genai_error *err);
/* Stores (or clears, with NULL) a diffusion model's detection JSON. The text
 * is stored as given; GENAI_ENOT_FOUND when there is no such id. */
int store_db_set_detection(store_db *db, const char *id, const char *detection_json,
                           genai_error *err);
/* Stores (or clears, with NULL) a diffusion model's settings override as
 * given; callers validate it first (store_set_settings does).
 * GENAI_ENOT_FOUND when there is no such id. */
int store_db_set_settings(store_db *db, const char *id, const char *settings_json,
                          genai_error *err);
/* The model id that has a file with this SHA-256, into out (size outsz);
 * GENAI_ENOT_FOUND when none. */
int store_db_find_by_sha(store_db *db, const char *sha256, char *out, size_t outsz,
                         genai_error *err);

/* Inserts or replaces the footprint for (model_id, config_key). */
int store_db_put_footprint(store_db *db, const store_footprint *f, genai_error *err);
/* Loads one footprint (free with store_footprint_free); GENAI_ENOT_FOUND. */
int store_db_get_footprint(store_db *db, const char *model_id, const char *config_key,
                           store_footprint *out, genai_error *err);
/* Every footprint of model_id, newest first, into a new array *out of *n
 * (free with store_footprint_list_free); *n may be 0 (then *out is NULL). */
int store_db_list_footprints(store_db *db, const char *model_id, store_footprint **out, size_t *n,
                             genai_error *err);
/* Frees list[0..n) and the array; accepts NULL. */
void store_footprint_list_free(store_footprint *list, size_t n);

#endif
