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
/* One row per line reads best for this table. */
/* clang-format off */
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
/* clang-format on */

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
 * and the orchestrator with the runtimes. */
typedef struct genai genai;

/*
 * Creates a context from cfg (copied; NULL: defaults), starts its loop
 * thread and opens the model registry (creating the data folder). Free with
 * genai_free. Fails with GENAI_EBAD_ARG when no home folder can be found
 * (neither GENAI_HOME nor HOME), or with the registry's error.
 */
GENAI_EXPORT int genai_new(const genai_config *cfg, genai **out, genai_error *err);

/*
 * Stops the loop thread (after the event callback was removed, the runtimes
 * were stopped, their children killed and reaped, and the queued messages
 * ran: an asynchronous image job's done callback reports GENAI_ECANCELLED
 * then), closes the registry and frees g. No other call on
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

typedef struct genai_prune_options {
    int dry_run;  /* report what would go; remove nothing */
    int partials; /* also remove partial downloads no pull is writing */
    /* > 0: also remove partial downloads not written for this many days */
    double partials_older_than_days;
} genai_prune_options;

/*
 * Deletes the files under the store's models folder that no registered model
 * lists (abandoned pulls, incomplete diffusion sets; docs/store.md "Prune"),
 * each under its lock; files a running pull may still register are skipped.
 * opts NULL: the defaults (partial downloads kept). *json_out (optional)
 * receives the report (genai_free_string). Blocks the calling thread.
 */
GENAI_EXPORT int genai_models_prune(genai *g, const genai_prune_options *opts, char **json_out,
                                    genai_error *err);

/* Progress of a pull. The strings are valid during the callback only. */
typedef struct genai_pull_progress {
    const char *phase;   /* resolving, waiting, downloading, retrying, verifying, done */
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
    /* A diffusion model's other files, as NULL-terminated "role=REF" strings
     * (role clip_l, clip_g, t5xxl or vae; REF hf://owner/repo/path/file[@REV]
     * or a URL), or NULL. They imply kind "diffusion" (kind "llm" with
     * components: GENAI_EBAD_ARG); every reference is resolved before the
     * first download, and a set its family finds incomplete is refused with
     * GENAI_ENOT_FOUND naming the role (the files stay for the next pull). */
    const char *const *components;
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
 * and the orchestrator's "orch.llm_ready", "orch.offload_started",
 * "orch.image_done", ... of docs/orchestrator.md), as the HTTP API's GET /v1/events sends them.
 * type and json ({"id","time_ms","type","data"}) are valid during the call only. Runs on the
 * context's loop thread: it must return quickly and must not call genai_free. Calls that wait on
 * the loop (the LLM and image functions) fail with GENAI_EBUSY from it; registry calls are fine.
 */
typedef void (*genai_event_fn)(const char *type, const char *json, void *userdata);

/* Sets the event callback (fn NULL removes it). When it returns, the old
 * callback is not running and will not be called again. Not from the
 * callback itself. */
GENAI_EXPORT int genai_set_event_callback(genai *g, genai_event_fn fn, void *userdata,
                                          genai_error *err);

/*
 * LLM runtime, chat and images. These go through the context's
 * orchestrator (the same service as `genai serve`: docs/orchestrator.md),
 * which decides what is resident on the GPU: one LLM at a time, loaded on
 * demand by the "model" of a request; an image job that does not fit next
 * to the LLM moves it aside and the LLM comes back afterwards.
 *
 * Each call posts to the context's loop thread and waits there for its
 * answer (or, for genai_image_submit, for the job to be queued); none
 * touches runtime state from the caller's thread. They may run on many
 * threads at once. Calling one that waits from a genai callback (which runs
 * on the loop thread) would deadlock: it fails with GENAI_EBUSY instead.
 * Errors carry the reason in err->detail, with a suggestion where there is
 * one: GENAI_ENOT_FOUND (model not registered), GENAI_EBAD_ARG (malformed
 * request, wrong model kind, another LLM in use), GENAI_EBUSY (queue full),
 * GENAI_EUNAVAILABLE (the LLM did not come back before the queue deadline,
 * or its server went away), GENAI_EHTTP (llama-server refused the request:
 * its message), GENAI_ECHILD_EXITED (the runtime failed to load, with the
 * child's last lines), GENAI_ENO_FIT.
 */

/* Starts the LLM runtime with a registered model and blocks until it is
 * READY (or the load failed). options_json (NULL: {}) may set "ctx" (alias
 * "ctx_size": context length, 0: the largest that fits) and "ngl" (alias
 * "gpu_layers"). The same model already READY returns at once. */
GENAI_EXPORT int genai_llm_start(genai *g, const char *model_id, const char *options_json,
                                 genai_error *err);
/* Stops the LLM runtime; blocks until its process is reaped and its memory
 * reclaimed. 0 also when nothing was loaded. */
GENAI_EXPORT int genai_llm_stop(genai *g, genai_error *err);
/* The runtime's state as JSON (GET /api/llm's shape, docs/api.md) in
 * *json_out, freed with genai_free_string. */
GENAI_EXPORT int genai_llm_status(genai *g, char **json_out, genai_error *err);

/* A chat completion: request_json is an OpenAI chat request whose "model"
 * is a registered LLM id ("stream" is forced off). Blocks until the whole
 * reply arrived; *response_json (genai_free_string) is llama-server's
 * chat.completion object. */
GENAI_EXPORT int genai_chat(genai *g, const char *request_json, char **response_json,
                            genai_error *err);

/* Streaming: each chunk (an OpenAI chat.completion.chunk as JSON, valid
 * during the call) goes to fn on the thread that called genai_chat_stream,
 * in order, as it arrives; return non-zero to stop: the request is
 * aborted upstream (llama-server stops generating) and the call returns
 * GENAI_ECANCELLED. Returns 0 after the stream's [DONE]. fn may call other
 * genai functions. */
typedef int (*genai_chat_chunk_fn)(const char *chunk_json, void *userdata);
GENAI_EXPORT int genai_chat_stream(genai *g, const char *request_json, genai_chat_chunk_fn fn,
                                   void *userdata, genai_error *err);

/* Image progress: step of steps (of the image in progress) for job; on the
 * context's loop thread (return quickly; call no waiting genai function). */
typedef void (*genai_image_progress_fn)(uint64_t job, int step, int steps, void *userdata);
/* An asynchronous job ended: status 0 and the result JSON (as from
 * genai_image_generate), or a negative code and {"error":{"code",
 * "message"}}; json is valid during the call. On the loop thread, exactly
 * once per job genai_image_submit accepted (with GENAI_ECANCELLED when the
 * context is freed first). */
typedef void (*genai_image_done_fn)(uint64_t job, int status, const char *json, void *userdata);

/* Generates images (request JSON as POST /v1/images/generations: prompt,
 * model, n, size, steps, seed, cfg_scale, sampler, ...) and blocks;
 * *result_json (genai_free_string) is that route's response: "data" with
 * each PNG as "b64_json", and "genai" with the seeds, size, whether the LLM
 * was moved aside and the model's settings as applied with their warnings. */
GENAI_EXPORT int genai_image_generate(genai *g, const char *request_json,
                                      genai_image_progress_fn progress, void *userdata,
                                      char **result_json, genai_error *err);

/* One generated image: PNG bytes and what made it. */
typedef struct genai_image_out {
    unsigned char *png; /* owned by the result */
    size_t png_len;
    uint32_t width, height;
    int64_t seed;
} genai_image_out;

/* Images as bytes; free with genai_image_result_free. */
typedef struct genai_image_result {
    uint64_t job;
    size_t count; /* n of the request */
    genai_image_out *images;
    int offloaded;       /* the LLM was moved aside for the job */
    char *warnings_json; /* JSON array of the model settings' warnings (strings) */
} genai_image_result;

/* As genai_image_generate, with the images as bytes in *out. */
GENAI_EXPORT int genai_image(genai *g, const char *request_json, genai_image_progress_fn progress,
                             void *userdata, genai_image_result **out, genai_error *err);
/* Releases a result of genai_image. Accepts NULL. */
GENAI_EXPORT void genai_image_result_free(genai_image_result *r);

/* Queues an image job and returns once it is admitted, with its id in
 * *job_out; progress and done (each may be NULL) follow on the loop
 * thread, with userdata. */
GENAI_EXPORT int genai_image_submit(genai *g, const char *request_json,
                                    genai_image_progress_fn progress, genai_image_done_fn done,
                                    void *userdata, uint64_t *job_out, genai_error *err);
/* The job as JSON (GET /api/images/{id}'s shape: state waiting, queued,
 * running, succeeded, failed or cancelled; progress; the result once
 * succeeded) in *json_out (genai_free_string). GENAI_ENOT_FOUND for an
 * unknown job (finished jobs are kept 10 minutes). */
GENAI_EXPORT int genai_image_poll(genai *g, uint64_t job, char **json_out, genai_error *err);
/* Cancels a queued or running job; its done callback then reports
 * GENAI_ECANCELLED. GENAI_ENOT_FOUND for an unknown or finished job. */
GENAI_EXPORT int genai_image_cancel(genai *g, uint64_t job, genai_error *err);

/*
 * Reservations (docs/budgets.md, docs/api.md "Reservations"): make bytes of
 * a GPU (or of host memory) free for the calling app for a while. genai
 * moves its LLM aside when it must and confirms only once the memory is
 * observed free; it takes nothing back there until the reservation ends.
 */

/* The host, as a reservation's device. */
#define GENAI_RESERVE_HOST (-1)

/*
 * Reserves bytes of device (a GPU index or GENAI_RESERVE_HOST) for
 * deadline_s seconds (1 .. 86400), with reason (copied; may be NULL), and
 * blocks until the memory is observed free: 0 and *id, to pass to
 * genai_reservation_release. Waits at most timeout_ms (0: deadline_s);
 * then GENAI_ETIMEOUT and the reservation is released. GENAI_ECANCELLED
 * when it ended unconfirmed, GENAI_EBAD_ARG / GENAI_ENO_FIT for a request
 * that can never be met, GENAI_EUNAVAILABLE when the context runs no
 * orchestrator. Thread-safe; never from an event callback.
 */
GENAI_EXPORT int genai_reserve(genai *g, int device, uint64_t bytes, uint32_t deadline_s,
                               const char *reason, uint32_t timeout_ms, uint64_t *id,
                               genai_error *err);
/* Ends a reservation early (genai may then reload what it moved aside).
 * GENAI_ENOT_FOUND for an unknown or ended one. Thread-safe. */
GENAI_EXPORT int genai_reservation_release(genai *g, uint64_t id, genai_error *err);

#ifdef __cplusplus
}
#endif
#endif /* GENAI_H */
