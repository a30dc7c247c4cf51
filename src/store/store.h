/*
 * store.h - the model store: pull, add, remove, on top of the registry.
 *
 * Layout under the data folder:
 *   registry.db                         the SQLite registry (registry.h)
 *   models/hf/<owner>/<repo>/<path>     files pulled from Hugging Face
 *   models/url/<host>/<file>            files pulled from plain URLs
 *   locks/<id>.lock                     one lock per model id being pulled
 *   <file>.partial, <file>.lock         a download in progress and its lock
 *                                       (lock files exist only while held: lock.h)
 *
 * A pull takes the model's lock, so a second pull of the same model waits
 * (reporting STORE_PHASE_WAITING) and then finds it registered. Each file is
 * downloaded under its own lock (two models may share a file), verified,
 * renamed into place, and only then is the model registered, in one
 * transaction. Blocking calls; run them off an event loop (see download.h).
 */
#ifndef GENAI_STORE_STORE_H
#define GENAI_STORE_STORE_H

#include "core/error.h"
#include "store/download.h"
#include "store/registry.h"

typedef struct store store;

/* Opens the store in the data folder from paths_resolve (GENAI_HOME or XDG),
 * creating folders and the registry. Close with store_close. */
int store_open(store **out, genai_error *err);
/* Same with an explicit data folder. */
int store_open_at(const char *data_dir, store **out, genai_error *err);
/* Closes the registry and frees the store; accepts NULL. */
void store_close(store *s);
/* The registry connection (owned by the store). */
store_db *store_registry(store *s);
/* The data folder the store was opened in (owned by the store). */
const char *store_data_dir(const store *s);

/* One more file of a diffusion model, pulled with its main file. */
typedef struct store_pull_component {
    const char *role;   /* "clip_l", "clip_g", "t5xxl" or "vae" (dm_role_parse) */
    const char *ref;    /* hf://owner/repo/path/file[@rev] or an http(s) URL: one file */
    const char *sha256; /* expected digest of a URL component, or NULL */
} store_pull_component;

typedef struct store_pull_opts {
    const char *ref;    /* hf://..., owner/repo[:QUANT][@rev], or an http(s) URL */
    const char *id;     /* NULL: derived from the file name */
    const char *name;   /* display name; NULL: derived */
    store_kind kind;    /* STORE_KIND_LLM unless told */
    const char *sha256; /* expected digest for a URL pull (single file), or NULL */
    /* Components of a diffusion model (kind must be STORE_KIND_DIFFUSION),
     * one per role; NULL and 0 when none. */
    const store_pull_component *components;
    size_t n_components;
} store_pull_opts;

/*
 * Pulls a model and registers it. Returns 0 when downloaded now, 1 when it
 * was already registered (possibly by a concurrent pull we waited for). *out
 * (optional) receives the registered rows (free with store_model_free).
 * Errors as store_download and store_hf_resolve, plus GENAI_EBUSY when the id
 * is taken by a different model.
 *
 * With components, every reference (the main one and each component's) is
 * resolved before the first byte is downloaded; the files are fetched in
 * role order (model, clip_l, clip_g, t5xxl, vae), each as the main file is,
 * and the set is then checked like store_add's: a known family missing a
 * component fails with GENAI_ENOT_FOUND naming the role, registers nothing
 * and keeps the verified files for the next pull. The id already registered
 * with another set of files is GENAI_EBUSY. Without components a missing
 * component is only a warning, and a registered model with the same main
 * file counts as already present whatever its components.
 */
int store_pull(store *s, const store_net *net, const store_pull_opts *o, store_model *out,
               genai_error *err);

typedef struct store_add_file {
    const char *role; /* "model", "vae", "clip_l", ... */
    const char *path; /* local file, registered in place (not copied) */
} store_add_file;

/*
 * Registers local files in place (managed = 0: `rm` leaves them on disk).
 * Each file is hashed; every .gguf file goes through the GGUF reader, and an
 * LLM's profile is built and cached (the reader's error refuses the file).
 * id NULL: derived from the first file name.
 */
int store_add(store *s, const char *id, const char *name, store_kind kind,
              const store_add_file *files, size_t n, store_model *out, genai_error *err);

/*
 * Removes a model's rows, then deletes the files the store owns (and their
 * partial files). Files added in place stay. *removed (optional) receives the
 * rows as they were (free with store_model_free).
 */
int store_remove(store *s, const char *id, store_model *removed, genai_error *err);

/* Derives a model id from a file name: lowercase, without the directory,
 * the extension and any "-NNNNN-of-MMMMM" shard suffix. */
int store_id_from_name(const char *file, char *out, size_t outsz);

/* True for ids made of [A-Za-z0-9._-] (1..128 chars, not starting with '.' or '-'). */
int store_id_valid(const char *id);

#endif
