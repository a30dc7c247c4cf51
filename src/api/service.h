/*
 * service.h - the runtime service behind `genai serve` and the C library:
 * one orchestrator (src/orch) on the loop thread with the model registry in
 * front of it, and the waiting that requests do on it.
 *
 * Models are named by their registry id (`genai pull`, `genai add`). An LLM
 * request resolves its model (a registry read on a libuv worker, skipped
 * when the model is the one already configured), selects it in the
 * orchestrator when no other LLM is in use (orch_llm_configure), and waits
 * in the orchestrator's gate until the LLM is READY (loading it on demand)
 * or its deadline passes. One LLM at a time: a request for another LLM
 * while one is loaded, loading or serving fails with "model X is not
 * loaded; one LLM at a time" (unload the current one first: svc_llm_stop).
 *
 * Image requests (the JSON of POST /v1/images/generations) become an
 * img_request from the registered model's files by role and its settings
 * override, and go to orch_image_submit, which applies the model's
 * settings and decides where the job runs (moving the LLM aside if it must).
 * Progress comes from the runner, completion from the orchestrator's
 * image_done event; results are read from the runner (kept 10 minutes).
 *
 * Every answer carries a stable error code name and the HTTP status the
 * HTTP API uses for it, so the C library and the HTTP routes say the same
 * thing (docs/api.md).
 *
 * Threading: loop thread only, every function and every callback.
 * Ownership: a svc_wait is owned by the service; it is valid until its
 * final callback ran or svc_wait_cancel was called.
 */
#ifndef GENAI_API_SERVICE_H
#define GENAI_API_SERVICE_H

#include "core/error.h"
#include "core/http_client.h"
#include "orch/orch.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

struct events;
struct metrics;
struct orch_reservation;
struct orch_rsv;
struct orch_watch;

typedef struct svc svc;
typedef struct svc_wait svc_wait;

typedef struct svc_opts {
    unsigned queue_timeout_s; /* an LLM request waits at most this long; 0: 300 */
    unsigned queue_limit;     /* LLM requests that may wait; 0: 64 */
    struct events *bus;       /* borrowed; NULL: none */
    struct metrics *metrics;  /* borrowed; NULL: none */
    /* Orchestrator tuning (timings, probe) for tests and benchmarks; NULL:
     * defaults. Its llm, bus, metrics, on_event and image callbacks are
     * ignored. Borrowed for the call. */
    const orch_opts *tune;
    /* Sharing the machine (docs/budgets.md): share = 1 also creates the
     * memory watcher (orch/watch.h) with others_policy (enum
     * config_others_policy) and the periods below (0: 1000 and 250 ms), and
     * the reservation book (orch/reserve.h), next to the orchestrator. */
    int share;
    int others_policy;
    unsigned watch_interval_ms;
    unsigned watch_fast_ms;
} svc_opts;

/* Creates the service and its orchestrator (no LLM configured yet) on uv.
 * Free with svc_free. */
int svc_new(uv_loop_t *uv, const svc_opts *o, svc **out, genai_error *err);

/* Answers every pending wait with GENAI_ECANCELLED, frees the orchestrator
 * (children SIGKILLed and reaped) and the HTTP client; memory goes when the
 * loop has run the close callbacks and any registry read in progress. The
 * loop must run afterwards. Accepts NULL. */
void svc_free(svc *s);

orch *svc_orch(svc *s);
/* The loop's HTTP client, for the proxy to llama-server. */
http_client *svc_http(svc *s);
struct metrics *svc_metrics(svc *s);
/* The reservation book and the memory watcher (svc_opts.share), or NULL.
 * Owned by the service. */
struct orch_rsv *svc_reservations(svc *s);
struct orch_watch *svc_watcher(svc *s);
/* Waits until reservation id is confirmed or ended, at most timeout_ms
 * (0: no limit): fn (api/reserve_api.h) runs once, with 0 when held,
 * GENAI_ECANCELLED when it ended unconfirmed or the service is freed,
 * GENAI_ETIMEOUT. GENAI_ENOT_FOUND for an unknown id, GENAI_EUNAVAILABLE
 * without a book. */
int svc_rsv_wait(svc *s, uint64_t id, uint64_t timeout_ms,
                 void (*fn)(void *arg, int code, const struct orch_reservation *r), void *arg,
                 genai_error *err);

/* An answer: code 0 or an error with a sentence, the stable error code
 * name ("model_not_found", "model_not_loaded", "unavailable", ...), the
 * HTTP status it maps to, a suggestion (or NULL) and, for 503, when to
 * retry. Strings are valid during the callback only. */
typedef struct svc_reply {
    int code;
    const char *detail;
    const char *error;      /* NULL when code is 0 */
    int http_status;        /* 200 when code is 0 */
    const char *suggestion; /* may be NULL */
    int retry_after_s;      /* > 0 with GENAI_EUNAVAILABLE / a full queue */
    /* LLM requests, code 0: the grant. Release it with svc_llm_release. */
    uint64_t ticket;
    const llm_rt_endpoint *endpoint;
    uint64_t waited_ms;
    /* Image submits, code 0: the orchestrator's job id. */
    uint64_t job;
} svc_reply;

typedef void (*svc_fn)(void *arg, const svc_reply *r);

/*
 * An LLM request for model (a registry id): fn runs exactly once, later,
 * with the endpoint (code 0: the request is in flight until
 * svc_llm_release) or the reason it cannot be served. *out (optional) is
 * the handle for svc_wait_cancel while it waits.
 */
int svc_llm_request(svc *s, const char *model, svc_fn fn, void *arg, svc_wait **out,
                    genai_error *err);
/* Ends a granted request (the proxy finished). */
void svc_llm_release(svc *s, uint64_t ticket);

/*
 * Loads model with optional fixed context (0: auto) and GPU layers
 * (PLAN_NGL_AUTO: auto); fn runs once when the LLM is READY or the load
 * failed (with the runtime's reason). A READY LLM of the same model
 * answers at once; another model in use fails with model_not_loaded.
 */
int svc_llm_start(svc *s, const char *model, uint32_t ctx, int32_t ngl, svc_fn fn, void *arg,
                  svc_wait **out, genai_error *err);
/* Unloads the LLM (orch_llm_unload); fn runs once it is stopped and its
 * memory reclaimed, or at once when nothing is loaded. */
int svc_llm_stop(svc *s, svc_fn fn, void *arg, svc_wait **out, genai_error *err);
/* {"model","state","reason","pid","waiting","in_flight","plan":{...}|null,
 * "stats":{...}}: a new reference, NULL when out of memory. The endpoint
 * (port, key) is never included. */
json_t *svc_llm_status(svc *s);
/* What runs now, for GET /api/status: an array holding the LLM (its
 * svc_llm_status object with "kind":"llm") unless it is absent, then
 * {"kind":"image","state":"busy","jobs":N} while N image jobs are queued or
 * running. A new reference, NULL when out of memory. */
json_t *svc_runtimes(svc *s);

/* Image job callbacks; each optional. progress: the job's step of steps
 * (and image of images); done: once, after a successful submit, when the
 * job finished (code 0, or the failure with its paragraph). */
typedef struct svc_image_cbs {
    svc_fn submitted; /* once: r->job on success, else the refusal (then nothing more) */
    void (*progress)(void *arg, uint64_t job, const img_progress *p);
    svc_fn done;
} svc_image_cbs;

/*
 * Parses an image request (POST /v1/images/generations: prompt, model, n,
 * size, response_format, negative_prompt, steps, cfg_scale, seed, sampler,
 * scheduler, policy) and submits it after the registry lookup. Returns
 * GENAI_EBAD_ARG at once for a malformed request (err names the field);
 * everything later goes to the callbacks.
 */
int svc_image_submit(svc *s, const json_t *body, const svc_image_cbs *cb, void *arg, svc_wait **out,
                     genai_error *err);
/* The parser svc_image_submit uses, alone (for the fuzz target): *out gets
 * the request (strings owned: img_request_free) and *model the model id or
 * NULL (mem_free); GENAI_EBAD_ARG naming the field otherwise. Any thread. */
int svc_image_parse(const json_t *body, img_request *out, char **model, genai_error *err);

/* Cancels a job: GENAI_ENOT_FOUND for an unknown or finished job. */
int svc_image_cancel(svc *s, uint64_t job);
/*
 * The OpenAI response of a finished job: {"created","data":[{"b64_json",
 * "revised_prompt"}],"genai":{"job","seed","width","height","offloaded",
 * "model_settings"}}; NULL with *code set when it is unknown, not finished
 * or failed (and *detail its message). A new reference.
 */
json_t *svc_image_result(svc *s, uint64_t job, int *code, const char **detail);
/* The native job object: {"id","state","progress","error"?,"result"?}
 * (result: svc_image_result's when succeeded and with_result). NULL when
 * the job is unknown. A new reference. */
json_t *svc_image_job_json(svc *s, uint64_t job, int with_result);

/* Forgets a pending wait: its callbacks never run. An image wait's job is
 * cancelled too when cancel_job is set. Accepts NULL. */
void svc_wait_cancel(svc_wait *w, int cancel_job);

/* Counts tokens from a proxied response's usage field into
 * genai_llm_tokens_total{kind="prompt"|"completion"}. */
void svc_count_tokens(svc *s, int64_t prompt, int64_t completion);

#endif
