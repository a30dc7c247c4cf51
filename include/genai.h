/*
 * genai.h - the public C API of genai, a runtime that supervises llama.cpp's
 * llama-server and stable-diffusion.cpp on one machine and shares its memory
 * between them.
 *
 * This is the only installed header. Every exported symbol starts with
 * "genai_". Functions that can fail return int: 0 or a positive value on
 * success, a negative code on failure. System errors are negative errno
 * values; genai's own errors live in the reserved range GENAI_E__FIRST ..
 * GENAI_E__LAST (below -30000, far from any errno).
 *
 * Ownership rules are written on each function.
 */
#ifndef GENAI_H
#define GENAI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define GENAI_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define GENAI_EXPORT __attribute__((visibility("default")))
#else
#define GENAI_EXPORT
#endif

#define GENAI_VERSION_MAJOR 0
#define GENAI_VERSION_MINOR 1
#define GENAI_VERSION_PATCH 0

/*
 * Domain error codes. The table is an X-macro so that the enum, the names and
 * the messages come from one place: XX(NAME, value, "message").
 * Append new codes at the end; values are part of the ABI and never reused.
 */
#define GENAI_ERRNO_MAP(XX)                                                                        \
    XX(CORRUPT, -30001, "corrupt or malformed input")                                             \
    XX(UNSUPPORTED, -30002, "unsupported format or version")                                      \
    XX(NOT_FOUND, -30003, "not found")                                                            \
    XX(TOO_LARGE, -30004, "value exceeds a limit")                                                \
    XX(CHECKSUM, -30005, "checksum mismatch")                                                     \
    XX(NOT_READY, -30006, "process did not become ready")                                         \
    XX(NO_FIT, -30007, "does not fit in the available memory")                                    \
    XX(CHILD_EXITED, -30008, "child process exited unexpectedly")                                 \
    XX(TIMEOUT, -30009, "timed out")                                                              \
    XX(CANCELLED, -30010, "cancelled")                                                            \
    XX(BAD_ARG, -30011, "invalid argument")                                                       \
    XX(NO_DEVICE, -30012, "no such device or provider unavailable")                               \
    XX(PROVIDER, -30013, "hardware provider reported an error")                                   \
    XX(BUSY, -30014, "resource busy")                                                             \
    XX(UNAVAILABLE, -30015, "temporarily unavailable")                                            \
    XX(HTTP, -30016, "HTTP error")                                                                \
    XX(INTERNAL, -30017, "internal error")

enum genai_errno {
    GENAI_E__FIRST = -30000,
#define GENAI_XX_ENUM(name, value, msg) GENAI_E##name = (value),
    GENAI_ERRNO_MAP(GENAI_XX_ENUM)
#undef GENAI_XX_ENUM
    GENAI_E__LAST = -39999
};

/* Message for any error code (negative errno or GENAI_E*). Never NULL; the
 * returned string is static and must not be freed. */
GENAI_EXPORT const char *genai_strerror(int err);

/* Symbolic name ("ENOENT", "GENAI_ECORRUPT"); "UNKNOWN" when unknown. Static. */
GENAI_EXPORT const char *genai_err_name(int err);

/* The library version as "MAJOR.MINOR.PATCH". Static. */
GENAI_EXPORT const char *genai_version(void);

/*
 * Detail that goes with an error code: which file, which offset, the child's
 * last stderr lines. The caller owns the object (usually on its stack); genai
 * fills it on failure and leaves it untouched on success.
 */
#define GENAI_ERROR_DETAIL_MAX 2048
typedef struct genai_error {
    int code;                            /* 0, negative errno or GENAI_E* */
    char detail[GENAI_ERROR_DETAIL_MAX]; /* NUL-terminated; "" when none */
} genai_error;

/* Resets err to "no error". Accepts NULL. */
GENAI_EXPORT void genai_error_clear(genai_error *err);

/* ======================================================================
 * The library API
 *
 * Threads: every function below may be called from any thread, at the
 * same time as any other, on the same context, except genai_free (no call
 * on the context may be running or start once it began) and the config
 * functions (a genai_config belongs to one thread at a time). Blocking calls
 * (registry, probe, downloads) run on the calling thread; calls that touch
 * runtime state post a message to the context's own event-loop thread and
 * wait for its reply. Callbacks say which thread runs them.
 *
 * Results that are documents (the system snapshot, model lists, statuses)
 * come back as JSON text in a NUL-terminated string that the caller owns and
 * releases with genai_free_string(). The shapes are those of the HTTP API
 * (docs/api.md), so one parser serves both. Out-parameters are written only
 * on success; on failure *err (when not NULL) holds the code and a detail.
 * ====================================================================== */

/*
 * Configuration: the keys of docs/configuration.md (host, port, api_key,
 * queue_limit, ...). Files and the environment are applied in the same
 * order as for `genai serve`. Where genai keeps its files follows
 * GENAI_HOME, else the XDG variables (docs/configuration.md).
 */
typedef struct genai_config genai_config;

/* A configuration with the documented defaults in *out (free with
 * genai_config_free). 0 or -ENOMEM. */
GENAI_EXPORT int genai_config_new(genai_config **out, genai_error *err);

/* Defaults, then the file (path; NULL: $GENAI_CONFIG, else
 * <config dir>/genai.json when it exists), then the GENAI_* environment.
 * An unknown key or a bad value fails with GENAI_EBAD_ARG naming it. *out is
 * freed with genai_config_free. */
GENAI_EXPORT int genai_config_load(genai_config **out, const char *path, genai_error *err);

/* Sets one key from text ("port", "8080"); GENAI_EBAD_ARG for an unknown
 * key or a bad value, and cfg is then unchanged. */
GENAI_EXPORT int genai_config_set(genai_config *cfg, const char *key, const char *value,
                                  genai_error *err);

/* Releases a configuration. Accepts NULL. */
GENAI_EXPORT void genai_config_free(genai_config *cfg);

/* A genai context: the event-loop thread, the event bus, the model registry,
 * and (once the orchestrator is part of the build) the runtimes. */
typedef struct genai genai;

/*
 * Creates a context from cfg (copied; NULL: defaults), starts its loop
 * thread and opens the model registry (creating the data folder). Free with
 * genai_free. Fails with GENAI_EBAD_ARG when no home folder can be found
 * (neither GENAI_HOME nor HOME), or with the registry's error.
 */
GENAI_EXPORT int genai_new(const genai_config *cfg, genai **out, genai_error *err);

/*
 * Stops the loop thread (after the queued messages ran and the event
 * callback was removed), closes the registry and frees g. No other call on
 * g may be running or start. Must not be called from a genai callback.
 * Accepts NULL.
 */
GENAI_EXPORT void genai_free(genai *g);

/* Releases a string returned by genai (JSON results). Accepts NULL. */
GENAI_EXPORT void genai_free_string(char *s);

/*
 * Probes the machine (CPUs, host memory with cgroup limits, GPUs) now and
 * returns the snapshot as JSON (docs/system.md) in *json_out, freed with
 * genai_free_string. Runs on the calling thread (tens of milliseconds).
 */
GENAI_EXPORT int genai_system(genai *g, char **json_out, genai_error *err);

/* The registered models as a JSON array of model objects (docs/api.md) in
 * *json_out, freed with genai_free_string; "[]" when there are none. */
GENAI_EXPORT int genai_models_list(genai *g, char **json_out, genai_error *err);

/* One model object as JSON in *json_out (genai_free_string).
 * GENAI_ENOT_FOUND when id is not registered. */
GENAI_EXPORT int genai_model_show(genai *g, const char *id, char **json_out, genai_error *err);

/* Removes a model: its registry rows, then the files genai downloaded for it
 * (files registered in place stay). Publishes "model.removed".
 * GENAI_ENOT_FOUND when id is not registered. */
GENAI_EXPORT int genai_model_remove(genai *g, const char *id, genai_error *err);

/* Progress of a pull. The strings are valid during the callback only. */
typedef struct genai_pull_progress {
    const char *phase;   /* resolving, waiting, hashing, downloading, retrying, verifying, done */
    const char *file;    /* the file being fetched */
    uint64_t done;       /* bytes on disk for this file */
    uint64_t total;      /* expected bytes, 0 when unknown */
    unsigned attempt;    /* 1-based */
    unsigned file_index; /* 1-based position among file_count files */
    unsigned file_count;
    const char *reason; /* "retrying": why the last attempt failed; else NULL */
} genai_pull_progress;

/* Runs on the thread that called genai_model_pull. Return 0 to go on, any
 * other value to cancel the pull (it then fails with GENAI_ECANCELLED and
 * the partial file stays for a later resume). */
typedef int (*genai_pull_progress_fn)(const genai_pull_progress *p, void *userdata);

typedef struct genai_pull_options {
    const char *ref;    /* owner/repo[:QUANT][@REV], hf://owner/repo/file.gguf, or an https URL */
    const char *id;     /* NULL: derived from the file name */
    const char *name;   /* display name; NULL: derived */
    const char *kind;   /* "llm" (NULL) or "diffusion" */
    const char *sha256; /* expected digest of a URL pull, or NULL */
    int allow_http;     /* permit plain http:// (tests, local mirrors) */
    genai_pull_progress_fn progress; /* NULL: no progress */
    void *userdata;                  /* for progress */
} genai_pull_options;

/*
 * Downloads a model (resumable, verified) and registers it; blocks the
 * calling thread until done. Returns 0 when downloaded now, 1 when it was
 * already registered. *json_out (optional; NULL to skip) receives the model
 * object, freed with genai_free_string. Publishes "model.pulled" or
 * "model.pull.failed". Errors: GENAI_ECHECKSUM, GENAI_EHTTP,
 * GENAI_ENOT_FOUND, GENAI_ECANCELLED, GENAI_EUNAVAILABLE, -ENOSPC, ...
 */
GENAI_EXPORT int genai_model_pull(genai *g, const genai_pull_options *opts, char **json_out,
                                  genai_error *err);

/* Cancels every pull running on g (from any thread, including a progress
 * callback); each returns GENAI_ECANCELLED within about a second. Returns
 * how many pulls were told. */
GENAI_EXPORT int genai_model_pull_cancel_all(genai *g);

/*
 * Events: what happened in the context ("model.pulled", "model.removed",
 * "llm.ready", ...), as the HTTP API's GET /v1/events sends them. type and
 * json ({"id","time_ms","type","data"}) are valid during the call only.
 * Runs on the context's loop thread: it must return quickly and must not
 * call genai_free. Calls that wait on the loop (the LLM and image functions)
 * would deadlock from it; registry calls are fine.
 */
typedef void (*genai_event_fn)(const char *type, const char *json, void *userdata);

/* Sets the event callback (fn NULL removes it). When it returns, the old
 * callback is not running and will not be called again. Not from the
 * callback itself. */
GENAI_EXPORT int genai_set_event_callback(genai *g, genai_event_fn fn, void *userdata,
                                          genai_error *err);

/*
 * LLM runtime, chat and images. These go through the orchestrator, which
 * decides what is resident on the GPU. In this version of the library the
 * orchestrator is not wired into the context yet: each of these functions
 * returns GENAI_EUNAVAILABLE with a detail saying so, and writes nothing.
 * The signatures are the ones the wired version keeps.
 */

/* Starts the LLM runtime with a registered model; options_json (NULL: {})
 * may set ctx_size, gpu_layers, ... (docs/api.md). Blocks until ready. */
GENAI_EXPORT int genai_llm_start(genai *g, const char *model_id, const char *options_json,
                                 genai_error *err);
/* Stops the LLM runtime; blocks until its memory is reclaimed. */
GENAI_EXPORT int genai_llm_stop(genai *g, genai_error *err);
/* The runtimes' state as JSON (genai_free_string). */
GENAI_EXPORT int genai_llm_status(genai *g, char **json_out, genai_error *err);

/* A chat completion (OpenAI request JSON in, response JSON out, freed with
 * genai_free_string); blocks. */
GENAI_EXPORT int genai_chat(genai *g, const char *request_json, char **response_json,
                            genai_error *err);

/* Streaming: each chunk (an OpenAI chat.completion.chunk as JSON, valid
 * during the call) goes to fn on the calling thread; return non-zero to
 * stop (the call then returns GENAI_ECANCELLED). */
typedef int (*genai_chat_chunk_fn)(const char *chunk_json, void *userdata);
GENAI_EXPORT int genai_chat_stream(genai *g, const char *request_json, genai_chat_chunk_fn fn,
                                   void *userdata, genai_error *err);

/* Image progress: step of steps for job; on the context's loop thread. */
typedef void (*genai_image_progress_fn)(uint64_t job, int step, int steps, void *userdata);
/* An asynchronous job ended: status 0 and the result JSON (valid during the
 * call), or a negative code and an error JSON. On the loop thread. */
typedef void (*genai_image_done_fn)(uint64_t job, int status, const char *json, void *userdata);

/* Generates an image (request JSON as POST /v1/images/generations) and
 * blocks; *result_json (genai_free_string) has the file paths. */
GENAI_EXPORT int genai_image_generate(genai *g, const char *request_json,
                                      genai_image_progress_fn progress, void *userdata,
                                      char **result_json, genai_error *err);
/* Queues an image job and returns at once with its id in *job_out. */
GENAI_EXPORT int genai_image_submit(genai *g, const char *request_json,
                                    genai_image_progress_fn progress, genai_image_done_fn done,
                                    void *userdata, uint64_t *job_out, genai_error *err);
/* Cancels a queued or running job; its done callback then reports
 * GENAI_ECANCELLED. GENAI_ENOT_FOUND for an unknown or finished job. */
GENAI_EXPORT int genai_image_cancel(genai *g, uint64_t job, genai_error *err);

#ifdef __cplusplus
}
#endif
#endif /* GENAI_H */
