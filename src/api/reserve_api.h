/*
 * reserve_api.h - waiting on reservations (orch/reserve.h) for the HTTP API
 * and the C library: "tell me when reservation N is confirmed, or that it
 * never will be, or that my patience ran out".
 *
 * The reservation book reports every state change to one callback; the
 * runtime service (api/service.h) passes them to its waits list here, which
 * answers every wait on that reservation once it leaves PENDING: HELD is
 * success; RELEASED or EXPIRED before confirmation is GENAI_ECANCELLED; the
 * wait's own timeout is GENAI_ETIMEOUT (the reservation itself goes on, the
 * caller decides whether to release it).
 *
 * The blocking calls (api_reserve, api_release) are what genai_reserve and
 * genai_reservation_release run: any thread but the loop's posts the work to
 * the loop with loop_call_wait and sleeps until the answer.
 *
 * Threading: api_rsv_waits_* run on the loop thread only; api_reserve and
 * api_release on any other thread.
 */
#ifndef GENAI_API_RESERVE_API_H
#define GENAI_API_RESERVE_API_H

#include "core/error.h"
#include "core/loop.h"
#include "orch/reserve.h"

#include <stdint.h>
#include <uv.h>

struct svc;
struct genai;

typedef struct api_rsv_waits api_rsv_waits;

/* The answer to one wait: 0 (HELD), GENAI_ECANCELLED (ended unconfirmed, or
 * shutting down), GENAI_ETIMEOUT; r is the reservation as last seen (NULL
 * when it is no longer known). Runs on the loop thread. */
typedef void (*api_rsv_wait_fn)(void *arg, int code, const orch_reservation *r);

/* An empty waits list on uv. Free with api_rsv_waits_free. */
int api_rsv_waits_new(uv_loop_t *uv, api_rsv_waits **out, genai_error *err);

/* Answers every wait GENAI_ECANCELLED, closes their timers; the memory goes
 * once the loop has run the close callbacks. Accepts NULL. */
void api_rsv_waits_free(api_rsv_waits *ws);

/* The book's on_change callback (orch_rsv_opts.on_change, arg = ws):
 * answers the waits on r once it is no longer PENDING. */
void api_rsv_waits_changed(void *ws, const orch_reservation *r);

/*
 * Waits until reservation id of book b leaves PENDING, or timeout_ms
 * passes (0: until it does). fn runs exactly once, later or before this
 * returns 0 (when the reservation is not PENDING already). GENAI_ENOT_FOUND
 * for an unknown id; -ENOMEM.
 */
int api_rsv_wait(api_rsv_waits *ws, const orch_rsv *b, uint64_t id, uint64_t timeout_ms,
                 api_rsv_wait_fn fn, void *arg, genai_error *err);

/*
 * Blocking, from any thread but l's: asks service s (running on l) for
 * bytes of device (a GPU index or ORCH_RSV_HOST) for deadline_s seconds and
 * waits until they are confirmed free (0, *id written), the reservation
 * ends unconfirmed (GENAI_ECANCELLED) or timeout_ms passes (GENAI_ETIMEOUT;
 * the reservation is released then, so nothing stays promised for a caller
 * that gave up). The request's own errors as orch_rsv_request returns them;
 * GENAI_EUNAVAILABLE when s keeps no reservation book.
 */
int api_reserve(loop *l, struct svc *s, int device, uint64_t bytes, uint32_t deadline_s,
                const char *reason, uint64_t timeout_ms, uint64_t *id, genai_error *err);

/* Blocking, from any thread but l's: releases reservation id of s.
 * GENAI_ENOT_FOUND for an unknown or ended one. */
int api_release(loop *l, struct svc *s, uint64_t id, genai_error *err);

/*
 * The context's loop and runtime service (context.c), for the calls above:
 * 0 with both written, GENAI_EUNAVAILABLE while the context runs no
 * service. Borrowed: valid until genai_free.
 */
int api_ctx_runtime(struct genai *g, loop **l, struct svc **s, genai_error *err);

#endif
