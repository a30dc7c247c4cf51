/*
 * requests.h - the orchestrator's side of the LLM request gate (gate.h):
 * granting the waiting requests when the LLM is READY, answering them at
 * their deadline or when the LLM is not coming, and the Retry-After those
 * answers carry.
 *
 * The public calls (orch_llm_acquire, _release, _cancel, orch_llm_waiting,
 * orch_llm_inflight) are declared in orch.h and defined in requests.c; the
 * functions below are what orch.c's phase machine calls. Loop thread only.
 */
#ifndef GENAI_ORCH_REQUESTS_H
#define GENAI_ORCH_REQUESTS_H

#include "orch/orch_int.h"

/* Answers every waiting request with code and "the LLM is temporarily
 * unavailable: why; retry after N s" (invariant 4 in orch.c). */
void orch_req_fail_waiters(orch *o, int code, const char *why);

/* Grants the waiting requests in arrival order, with the endpoint, while
 * the phase is IDLE with the LLM READY and no hold (invariant 3); each
 * granted request is in flight until orch_llm_release. */
void orch_req_grant_waiters(orch *o);

/* Arms the gate timer for the earliest waiter's deadline, or stops it when
 * nothing waits. */
void orch_req_arm_timer(orch *o);

#endif
