/*
 * watch.h - the memory watcher: notices other programs taking the memory
 * genai's resident runtimes need, and reacts by policy.
 *
 * genai never has the machine to itself (a game, a creative tool, another
 * user). While genai runs, the watcher samples the probe: every
 * interval_ms (watch.interval_ms, 1 s), every fast_ms (watch.fast_interval_ms,
 * 250 ms) while a swap or a hold is in progress. Each sample splits every
 * device's use into genai's (its children's pids: orch_child_pids) and
 * everyone else's (plan_usage_split) for the gauges, and asks the one fit
 * function whether genai's residents still fit their budget and reserve:
 * the snapshot as if genai's processes were gone (orch_snapshot_without),
 * then plan_fit of the residents' demands summed (orch_watch_assess).
 *
 * When they no longer fit for confirm_samples samples in a row (2: one
 * sample may catch a program in the middle of an allocation it frees at
 * once), the watcher reports "pressure" and, by policy
 * (other_programs.policy):
 *   - warn: nothing else; "restored" once they fit again;
 *   - offload: holds the orchestrator (orch_hold), which drains, stops and
 *     reclaims the LLM; then, once the LLM's demand fits again for
 *     confirm_samples samples, releases the hold ("restored") and the
 *     orchestrator reloads the LLM with its pinned configuration.
 * Only a READY LLM with no other hold is judged: genai's own swaps and
 * reservations move memory on purpose.
 *
 * Each report is an orch_watch_event to the callback, a bus event
 * ("budget.pressure", "budget.offload", "budget.restored" with the place,
 * the bytes needed, usable and held by others, and the reason), a log line,
 * and metrics: genai_budget_events_total{event}, gauges
 * genai_gpu_own_bytes{gpu}, genai_gpu_others_bytes{gpu}.
 *
 * Threading: loop thread only.
 */
#ifndef GENAI_ORCH_WATCH_H
#define GENAI_ORCH_WATCH_H

#include "core/error.h"
#include "orch/orch.h"
#include "orch/reclaim.h"
#include "orch/residency.h"
#include "sys/probe.h"

#include <stdint.h>
#include <uv.h>

struct events;
struct metrics;

#define ORCH_WATCH_WHY_MAX 200

typedef enum orch_watch_kind {
    ORCH_WATCH_PRESSURE = 0, /* genai's residents no longer fit */
    ORCH_WATCH_OFFLOAD,      /* policy offload: the LLM is being moved aside */
    ORCH_WATCH_RESTORED,     /* they fit again (warn), or the LLM may return (offload) */
} orch_watch_kind;

/* One judgement of a snapshot. */
typedef struct orch_watch_verdict {
    int fits;        /* 1: every resident fits its budget and reserve */
    int device;      /* first place short: a GPU index, -1 the host (when !fits) */
    uint64_t need;   /* genai's residents' demand there */
    uint64_t usable; /* what genai may hold there (budget, free, reserve) */
    uint64_t others; /* what is held there by anyone not genai */
    char why[ORCH_WATCH_WHY_MAX];
} orch_watch_verdict;

typedef struct orch_watch_event {
    orch_watch_kind kind;
    orch_watch_verdict v;
} orch_watch_event;

typedef struct orch_watch_stats {
    uint64_t samples;
    uint64_t pressures, offloads, restores;
    uint64_t last_pressure_ms; /* orch_now_ms() of the last pressure report */
} orch_watch_stats;

typedef struct orch_watch_opts {
    /* sample (tests) or else a probe context on probe (NULL: the real
     * machine, GENAI_FAKE_GPU honoured; borrowed for the call). */
    orch_sample_fn sample;
    void *sample_arg;
    const probe_options *probe;
    int interval_ms;     /* 0: 1000 */
    int fast_ms;         /* 0: 250 */
    int policy;          /* enum config_others_policy */
    int confirm_samples; /* 0: 2 */
    void (*on_event)(void *arg, const orch_watch_event *ev);
    void *arg;
    struct events *bus;      /* borrowed; NULL: none */
    struct metrics *metrics; /* borrowed; NULL: none */
} orch_watch_opts;

typedef struct orch_watch orch_watch;

/* Starts watching for orchestrator o (which must outlive the watcher; free
 * the watcher first). The first sample is taken at once. */
int orch_watch_new(uv_loop_t *uv, orch *o, const orch_watch_opts *opts, orch_watch **out,
                   genai_error *err);

/* Stops, releases its hold, closes the timer (the loop must run
 * afterwards). Accepts NULL. */
void orch_watch_free(orch_watch *w);

const orch_watch_stats *orch_watch_get_stats(const orch_watch *w);

/*
 * Judges one snapshot (changed in place into the view without genai's
 * residents): do the residents of res (LOADING or RESIDENT, with their
 * demands) fit within the budgets and reserves plan_fit_env_init applies?
 * Fills *out; returns out->fits.
 */
int orch_watch_assess(probe_snapshot *snap, const orch_residency *res, orch_watch_verdict *out);

/* "pressure", "offload", "restored". Static. */
const char *orch_watch_kind_name(orch_watch_kind k);

#endif
