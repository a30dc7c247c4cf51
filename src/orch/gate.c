/*
 * gate.c - the LLM request gate (see gate.h): a singly linked FIFO of
 * waiters and an unordered array of in-flight tickets. Both stay small
 * (the queue is bounded; in-flight requests are bounded by llama-server's
 * slots and the HTTP server's connections), so linear scans are fine.
 */
#include "orch/gate.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

void orch_gate_init(orch_gate *g, size_t max_waiting)
{
    memset(g, 0, sizeof(*g));
    g->max_waiting = max_waiting > 0 ? max_waiting : 1;
    g->next_ticket = 1;
}

void orch_gate_free(orch_gate *g)
{
    if (g == NULL)
        return;
    orch_gate_waiter *w = g->head;
    while (w != NULL) {
        orch_gate_waiter *next = w->next;
        mem_free(w);
        w = next;
    }
    mem_free(g->inflight);
    memset(g, 0, sizeof(*g));
}

uint64_t orch_gate_ticket(orch_gate *g)
{
    return g->next_ticket++;
}

int orch_gate_push(orch_gate *g, uint64_t now_ms, uint64_t deadline_ms, orch_llm_fn fn, void *arg,
                   uint64_t *ticket)
{
    if (g->n_waiting >= g->max_waiting)
        return GENAI_EBUSY;
    orch_gate_waiter *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->ticket = orch_gate_ticket(g);
    w->enqueued_ms = now_ms;
    w->deadline_ms = deadline_ms;
    w->fn = fn;
    w->arg = arg;
    if (g->tail != NULL)
        g->tail->next = w;
    else
        g->head = w;
    g->tail = w;
    g->n_waiting++;
    *ticket = w->ticket;
    return 0;
}

/* Unlinks w (whose predecessor is prev, NULL for the head) and copies it
 * out. */
static void take(orch_gate *g, orch_gate_waiter *prev, orch_gate_waiter *w, orch_gate_waiter *out)
{
    if (prev != NULL)
        prev->next = w->next;
    else
        g->head = w->next;
    if (g->tail == w)
        g->tail = prev;
    g->n_waiting--;
    *out = *w;
    out->next = NULL;
    mem_free(w);
}

int orch_gate_pop(orch_gate *g, orch_gate_waiter *out)
{
    if (g->head == NULL)
        return 0;
    take(g, NULL, g->head, out);
    return 1;
}

int orch_gate_pop_expired(orch_gate *g, uint64_t now_ms, orch_gate_waiter *out)
{
    orch_gate_waiter *prev = NULL;
    for (orch_gate_waiter *w = g->head; w != NULL; prev = w, w = w->next) {
        if (w->deadline_ms <= now_ms) {
            take(g, prev, w, out);
            return 1;
        }
    }
    return 0;
}

int orch_gate_cancel(orch_gate *g, uint64_t ticket)
{
    orch_gate_waiter *prev = NULL;
    for (orch_gate_waiter *w = g->head; w != NULL; prev = w, w = w->next) {
        if (w->ticket == ticket) {
            orch_gate_waiter gone;
            take(g, prev, w, &gone);
            return 0;
        }
    }
    return GENAI_ENOT_FOUND;
}

uint64_t orch_gate_next_deadline(const orch_gate *g)
{
    uint64_t d = UINT64_MAX;
    for (const orch_gate_waiter *w = g->head; w != NULL; w = w->next)
        if (w->deadline_ms < d)
            d = w->deadline_ms;
    return d;
}

int orch_gate_hold(orch_gate *g, uint64_t ticket)
{
    if (g->n_inflight == g->cap_inflight) {
        size_t cap = g->cap_inflight ? g->cap_inflight * 2 : 16;
        uint64_t *v = mem_reallocarray(g->inflight, cap, sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        g->inflight = v;
        g->cap_inflight = cap;
    }
    g->inflight[g->n_inflight++] = ticket;
    return 0;
}

int orch_gate_release(orch_gate *g, uint64_t ticket)
{
    for (size_t i = 0; i < g->n_inflight; i++) {
        if (g->inflight[i] == ticket) {
            g->inflight[i] = g->inflight[--g->n_inflight];
            return 0;
        }
    }
    return GENAI_ENOT_FOUND;
}
