/*
 * reclaim.h - observing that a stopped process's memory is really back
 * (contracts/memory.md §10, DESIGN.md principle 2).
 *
 * A GPU driver gives memory back asynchronously after a process exits, so
 * "the child was reaped" is not "the memory is free". The watcher samples
 * the machine until three things hold:
 *   1. the child is reaped (the caller starts the watcher only then);
 *   2. no GPU lists any of the watched pids in its process list;
 *   3. free memory has come back to what the plan needs: the demand that
 *      comes next fits, by the one fit function (plan_fit), next to the
 *      residents that stay.
 * It polls with backoff (first after first_ms, doubling up to max_ms; 50 ms
 * and 250 ms by default: Ollama polls every 250 ms and sees convergence in
 * 0.5-1.5 s, so short first polls catch the common fast case) until a
 * deadline, and reports how long it took or, at the deadline, which
 * condition still failed.
 *
 * orch_reclaim_check() is the pure decision on one snapshot; the watcher
 * adds the timer. orch_snapshot_without() builds the view "as if this
 * process were gone" that admission uses to ask whether a job would fit
 * once the LLM has moved aside.
 *
 * Threading: loop thread only.
 */
#ifndef GENAI_ORCH_RECLAIM_H
#define GENAI_ORCH_RECLAIM_H

#include "core/error.h"
#include "plan/fit.h"
#include "sys/probe.h"

#include <stdint.h>
#include <uv.h>

#define ORCH_RECLAIM_MAX_PIDS 4
#define ORCH_RECLAIM_MAX_RESIDENTS 8
#define ORCH_RECLAIM_WHY_MAX 200

/* What "reclaimed" means for one wait. A plain value (copied by start). */
typedef struct orch_reclaim_target {
    int32_t pids[ORCH_RECLAIM_MAX_PIDS]; /* must be gone from every GPU's list */
    uint32_t n_pids;
    int have_need;    /* 0: only the pid condition */
    plan_demand need; /* must fit next to the residents below */
    plan_demand residents[ORCH_RECLAIM_MAX_RESIDENTS];
    int32_t resident_pids[ORCH_RECLAIM_MAX_RESIDENTS];
    uint32_t n_residents;
} orch_reclaim_target;

/*
 * Decides on one snapshot: 1 when every condition holds, 0 when not (why,
 * if not NULL, says which one failed first: "GPU 0 still lists pid 123",
 * "needs 1.2 GiB more on GPU 0"). Never fails.
 */
int orch_reclaim_check(const probe_snapshot *snap, const orch_reclaim_target *t, char *why,
                       size_t whylen);

/*
 * Changes snap into the view without pid: on each GPU its listed use (or,
 * when the driver does not list it, d->gpu[i]) is added back to free and
 * removed from used, and its process entry is dropped; on the host its
 * resident anonymous memory (plan_demand_resident) goes back to
 * available. d may be NULL when only the listed use is known.
 */
void orch_snapshot_without(probe_snapshot *snap, int32_t pid, const plan_demand *d);

/* Takes one snapshot into *out (caller frees it). */
typedef int (*orch_sample_fn)(void *arg, probe_snapshot *out, genai_error *err);

typedef struct orch_reclaim_result {
    int ok;                         /* 1: reclaimed; 0: the deadline passed first */
    uint64_t elapsed_ms;            /* from start to the observation (or the deadline) */
    uint32_t polls;                 /* snapshots taken */
    char why[ORCH_RECLAIM_WHY_MAX]; /* ok == 0: the condition that still failed */
} orch_reclaim_result;

typedef void (*orch_reclaim_fn)(void *arg, const orch_reclaim_result *r);

typedef struct orch_reclaim orch_reclaim;

/* Creates an idle watcher on uv. Free with orch_reclaim_free. */
int orch_reclaim_new(uv_loop_t *uv, orch_reclaim **out, genai_error *err);

/*
 * Starts watching (cancelling a watch in progress): the first sample is
 * taken from the loop at once, then after first_ms, doubling to max_ms, and
 * one last one at timeout_ms. fn is called exactly once, from the loop,
 * never from inside this call (unless cancelled first). 0 or GENAI_EBAD_ARG.
 */
int orch_reclaim_start(orch_reclaim *w, const orch_reclaim_target *t, orch_sample_fn sample,
                       void *sample_arg, int first_ms, int max_ms, int timeout_ms,
                       orch_reclaim_fn fn, void *arg);

/* Stops a watch in progress; its callback will not run. */
void orch_reclaim_cancel(orch_reclaim *w);

/* 1 while a watch is in progress. */
int orch_reclaim_active(const orch_reclaim *w);

/* Frees the watcher (its timer closes asynchronously: the loop must run
 * afterwards). Accepts NULL. */
void orch_reclaim_free(orch_reclaim *w);

#endif
