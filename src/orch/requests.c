/*
 * requests.c - the orchestrator's side of the LLM request gate (gate.h).
 *
 * The gate is a pure queue; this is where its waiters are answered. When
 * the machine is IDLE with the LLM READY and no hold, orch.c's step calls
 * orch_req_grant_waiters, which grants them in arrival order with the
 * endpoint and moves each into the in-flight set the drain waits for
 * (invariant 3 in orch.c). One timer, armed for the earliest deadline,
 * answers the waiters whose deadline passed "temporarily unavailable
 * (state: reason); retry after N s". When a load is given up, the LLM is
 * unloaded or genai shuts down, every waiter is answered with the reason
 * (invariant 4). N is retry_after()'s estimate from the last timings.
 */
#include "orch/requests.h"

#include "orch/notify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void on_gate_timer(uv_timer_t *t);

/* Seconds until the LLM is likely READY again, for Retry-After. */
static int retry_after(const orch *o)
{
    uint64_t ms = 0;
    uint64_t load = o->stats.last_load_ms;
    uint64_t image = o->stats.last_image_ms;
    switch (o->llm) {
    case ORCH_LLM_READY:
        return 1;
    case ORCH_LLM_LOADING:
    case ORCH_LLM_RELOADING:
        ms = load;
        break;
    case ORCH_LLM_DRAINING:
    case ORCH_LLM_STOPPING:
    case ORCH_LLM_AWAY: {
        size_t pending = 0;
        for (size_t i = 0; i < o->n_jobs; i++)
            pending += o->jobs[i]->pub.state != ORCH_JOB_DONE;
        uint64_t per = image > 0 ? image : 1000;
        ms = per * (pending > 0 ? pending : 1) + o->stats.last_reclaim_ms + load;
        break;
    }
    case ORCH_LLM_ABSENT:
    case ORCH_LLM_FAILED:
        ms = load;
        break;
    }
    if (ms == 0)
        return o->o.retry_after_default_s;
    uint64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

static void answer(orch *o, const orch_gate_waiter *w, int code, const char *detail)
{
    orch_llm_grant g;
    memset(&g, 0, sizeof(g));
    g.code = code;
    g.ticket = w->ticket;
    g.retry_after_s = retry_after(o);
    uint64_t now = orch_now_ms();
    g.waited_ms = now > w->enqueued_ms ? now - w->enqueued_ms : 0;
    g.detail = detail;
    w->fn(w->arg, &g);
}

/* Answers every waiter with the reason the LLM is not coming (invariant 4). */
void orch_req_fail_waiters(orch *o, int code, const char *why)
{
    char detail[ORCH_REASON_MAX + 128];
    orch_gate_waiter w;
    while (orch_gate_pop(&o->gate, &w)) {
        snprintf(detail, sizeof(detail), "the LLM is temporarily unavailable: %s; retry after %d s",
                 why, retry_after(o));
        answer(o, &w, code, detail);
    }
}

void orch_req_grant_waiters(orch *o)
{
    if (o->llm != ORCH_LLM_READY || o->ph != ORCH_PH_IDLE || o->rt == NULL || o->n_holds > 0)
        return;
    llm_rt_endpoint ep;
    genai_error e;
    if (llm_runtime_endpoint(o->rt, &ep, &e) < 0)
        return;
    orch_gate_waiter w;
    while (o->llm == ORCH_LLM_READY && o->ph == ORCH_PH_IDLE && orch_gate_pop(&o->gate, &w)) {
        if (orch_gate_hold(&o->gate, w.ticket) < 0) {
            answer(o, &w, -ENOMEM, "out of memory");
            continue;
        }
        orch_llm_grant g;
        memset(&g, 0, sizeof(g));
        g.ticket = w.ticket;
        g.endpoint = ep;
        uint64_t now = orch_now_ms();
        g.waited_ms = now > w.enqueued_ms ? now - w.enqueued_ms : 0;
        g.detail = "";
        o->stats.requests_granted++;
        orch_notify_queue_wait(o->o.metrics, g.waited_ms);
        w.fn(w.arg, &g);
    }
}

void orch_req_arm_timer(orch *o)
{
    uint64_t d = orch_gate_next_deadline(&o->gate);
    if (d == UINT64_MAX) {
        uv_timer_stop(&o->t_gate);
        return;
    }
    uint64_t now = orch_now_ms();
    uv_timer_start(&o->t_gate, on_gate_timer, d > now ? d - now : 1, 0);
}

static void on_gate_timer(uv_timer_t *t)
{
    orch *o = t->data;
    uint64_t now = orch_now_ms();
    orch_gate_waiter w;
    while (orch_gate_pop_expired(&o->gate, now, &w)) {
        char detail[ORCH_REASON_MAX + 160];
        int ra = retry_after(o);
        snprintf(detail, sizeof(detail),
                 "the LLM is temporarily unavailable (%s%s%s); retry after %d s",
                 orch_llm_state_name(o->llm), o->reason[0] ? ": " : "", o->reason, ra);
        o->stats.requests_timed_out++;
        orch_emit(o, ORCH_EV_REQUEST_TIMEOUT, now - w.enqueued_ms, 0, GENAI_EUNAVAILABLE, 0, 0,
                  orch_llm_state_name(o->llm));
        answer(o, &w, GENAI_EUNAVAILABLE, detail);
    }
    orch_req_arm_timer(o);
}

int orch_llm_acquire(orch *o, uint64_t deadline_ms, orch_llm_fn fn, void *arg, uint64_t *ticket,
                     int *retry_after_s, genai_error *err)
{
    if (fn == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no callback");
    if (!o->have_llm)
        return err_set(err, GENAI_ENOT_FOUND, "no LLM is configured");
    uint64_t t;
    int rc = orch_gate_push(&o->gate, orch_now_ms(), deadline_ms, fn, arg, &t);
    if (rc == GENAI_EBUSY) {
        int ra = retry_after(o);
        if (retry_after_s != NULL)
            *retry_after_s = ra;
        o->stats.requests_refused++;
        return err_set(err, GENAI_EBUSY,
                       "the LLM is temporarily unavailable (%s) and %zu requests already wait; "
                       "retry after %d s",
                       orch_llm_state_name(o->llm), orch_gate_waiting(&o->gate), ra);
    }
    if (rc < 0)
        return err_set(err, rc, "queueing the request");
    *ticket = t;
    orch_req_arm_timer(o);
    orch_kick(o);
    return 0;
}

int orch_llm_release(orch *o, uint64_t ticket)
{
    int rc = orch_gate_release(&o->gate, ticket);
    if (rc == 0 && o->ph == ORCH_PH_DRAIN)
        orch_kick(o);
    return rc;
}

int orch_llm_cancel(orch *o, uint64_t ticket)
{
    int rc = orch_gate_cancel(&o->gate, ticket);
    if (rc == 0)
        orch_req_arm_timer(o);
    return rc;
}

size_t orch_llm_waiting(const orch *o)
{
    return orch_gate_waiting(&o->gate);
}

size_t orch_llm_inflight(const orch *o)
{
    return orch_gate_inflight(&o->gate);
}
