/*
 * gate.h - the LLM request gate: a bounded FIFO of requests waiting for the
 * LLM, each with a deadline, plus the set of requests holding it.
 *
 * A request that arrives while the LLM is not READY (loading, moved aside
 * for an image, reloading) waits here. When the LLM is READY the owner pops
 * the waiters in arrival order and grants them; a granted request is "in
 * flight" until it is released, and the in-flight count is what the
 * orchestrator drains before it stops the LLM. A waiter whose deadline
 * passes is popped by orch_gate_pop_expired() and answered with "temporarily
 * unavailable, retry after N s"; a full queue refuses at once (GENAI_EBUSY),
 * so nothing waits unbounded and nothing is dropped silently.
 *
 * Pure data structure: time is passed in (monotonic milliseconds), the
 * owner calls the callbacks. Not thread-safe: the loop thread owns it.
 */
#ifndef GENAI_ORCH_GATE_H
#define GENAI_ORCH_GATE_H

#include "llm/runtime.h"

#include <stddef.h>
#include <stdint.h>

/* What an LLM request is told: the endpoint, or why not. */
typedef struct orch_llm_grant {
    int code;                 /* 0: endpoint valid; GENAI_EUNAVAILABLE (retry_after_s),
                                 GENAI_ECANCELLED (shutting down) */
    uint64_t ticket;          /* the request's ticket (orch_llm_release it when code is 0) */
    llm_rt_endpoint endpoint; /* port, API key, model id */
    int retry_after_s;        /* code != 0: when to try again (>= 1) */
    uint64_t waited_ms;       /* time spent in the queue */
    const char *detail;       /* code != 0: a sentence for the client; valid during the call */
} orch_llm_grant;

/* Called on the loop thread, exactly once per queued request (unless it was
 * cancelled first). */
typedef void (*orch_llm_fn)(void *arg, const orch_llm_grant *g);

typedef struct orch_gate_waiter {
    uint64_t ticket;
    uint64_t enqueued_ms;
    uint64_t deadline_ms;
    orch_llm_fn fn;
    void *arg;
    struct orch_gate_waiter *next;
} orch_gate_waiter;

typedef struct orch_gate {
    orch_gate_waiter *head, *tail;
    size_t n_waiting;
    size_t max_waiting;
    uint64_t *inflight; /* tickets granted and not released */
    size_t n_inflight, cap_inflight;
    uint64_t next_ticket;
} orch_gate;

/* Initialises an empty gate holding at most max_waiting waiters (> 0). */
void orch_gate_init(orch_gate *g, size_t max_waiting);

/* Frees the waiters (without calling them: the owner answers them first)
 * and the in-flight set. Accepts NULL. */
void orch_gate_free(orch_gate *g);

/* A new ticket, for a request granted at once (no queueing). */
uint64_t orch_gate_ticket(orch_gate *g);

/* Queues a waiter; *ticket gets its ticket. GENAI_EBUSY when max_waiting
 * wait already, -ENOMEM. */
int orch_gate_push(orch_gate *g, uint64_t now_ms, uint64_t deadline_ms, orch_llm_fn fn, void *arg,
                   uint64_t *ticket);

/* Pops the oldest waiter into *out: 1, or 0 when none waits. */
int orch_gate_pop(orch_gate *g, orch_gate_waiter *out);

/* Pops one waiter whose deadline is <= now_ms (the oldest such) into *out:
 * 1, or 0 when none has expired. */
int orch_gate_pop_expired(orch_gate *g, uint64_t now_ms, orch_gate_waiter *out);

/* Removes a waiter: 0, or GENAI_ENOT_FOUND when no waiter has that ticket. */
int orch_gate_cancel(orch_gate *g, uint64_t ticket);

/* The earliest deadline among waiters, or UINT64_MAX when none waits. */
uint64_t orch_gate_next_deadline(const orch_gate *g);

/* Records ticket as in flight: 0 or -ENOMEM. */
int orch_gate_hold(orch_gate *g, uint64_t ticket);

/* Ends an in-flight request: 0, or GENAI_ENOT_FOUND (unknown or released
 * twice). */
int orch_gate_release(orch_gate *g, uint64_t ticket);

static inline size_t orch_gate_waiting(const orch_gate *g)
{
    return g->n_waiting;
}

static inline size_t orch_gate_inflight(const orch_gate *g)
{
    return g->n_inflight;
}

#endif
