/*
 * reserve.h - reservations: an app asks genai to make N bytes of a GPU (or
 * of host memory) free for a while ("the game is loading a level"), with a
 * deadline and a reason.
 *
 * A reservation's life:
 *
 *   request --free memory already covers it--> HELD (confirmed at once)
 *      |
 *      +--otherwise: hold the orchestrator (orch_hold: the LLM is drained,
 *      |  stopped and its memory reclaimed; nothing new starts; requests
 *      |  and image jobs wait in their queues) --> PENDING
 *      |        --sampled free memory covers every reservation on that
 *      |          place--> HELD (confirmed: "observed free")
 *      v
 *   HELD --release--> RELEASED    --deadline--> EXPIRED
 *   PENDING --release--> RELEASED --deadline--> EXPIRED (never confirmed)
 *
 * While PENDING or HELD, the reserved bytes are promised memory
 * (plan_promised_set): every plan genai makes (the image runner's
 * placement, the LLM's start, admission) sees them as reserved, so genai
 * does not take them back. When a reservation ends its bytes are no longer
 * promised first, and then its hold is released, so the LLM's reload (the
 * orchestrator's pinned reload, retried while memory comes back) plans with
 * the memory returned. The cheapest move is always tried first: nothing
 * moves when the memory is free already; otherwise the orchestrator
 * finishes the image job running (an sd-cli run cannot be paused) and moves
 * the LLM aside, the only runtime it can move.
 *
 * Every step is a bus event ("reservation.requested", ".confirmed" with the
 * time to confirmation, ".released", ".expired"), a log line and metrics
 * (genai_reservations_total{result}, genai_reservation_confirm_seconds,
 * genai_reservations_active).
 *
 * Threading: loop thread only (the thread running the orchestrator's loop);
 * the HTTP handlers and the C API post to it.
 */
#ifndef GENAI_ORCH_RESERVE_H
#define GENAI_ORCH_RESERVE_H

#include "core/error.h"
#include "orch/orch.h"
#include "orch/reclaim.h"
#include "sys/probe.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct events;
struct metrics;

/* The host, as a reservation's device. */
#define ORCH_RSV_HOST (-1)
#define ORCH_RSV_REASON_MAX 160
/* Longest a reservation may last: a day (a typo must not hold memory for
 * ever). */
#define ORCH_RSV_MAX_S 86400
/* Reservations kept after they ended, for GET. */
#define ORCH_RSV_KEEP_ENDED 64

typedef enum orch_rsv_state {
    ORCH_RSV_PENDING = 0, /* memory being freed */
    ORCH_RSV_HELD,        /* confirmed free, held for the app */
    ORCH_RSV_RELEASED,    /* released by the app */
    ORCH_RSV_EXPIRED,     /* reached its deadline */
} orch_rsv_state;

typedef struct orch_reservation {
    uint64_t id; /* 1, 2, ... */
    int device;  /* GPU index, or ORCH_RSV_HOST */
    uint64_t bytes;
    char reason[ORCH_RSV_REASON_MAX];
    orch_rsv_state state;
    int moved;           /* the orchestrator was held (the LLM moved aside) */
    uint64_t created_ms; /* orch_now_ms() clock */
    uint64_t deadline_ms;
    uint64_t confirmed_ms; /* 0 until HELD */
    uint64_t ended_ms;     /* 0 until RELEASED or EXPIRED */
    uint64_t free_seen;    /* free bytes on the place at the last sample */
} orch_reservation;

typedef void (*orch_rsv_fn)(void *arg, const orch_reservation *r);

typedef struct orch_rsv_opts {
    /* How to sample the machine: sample (tests) or else a probe context
     * opened on probe (NULL: the real machine, GENAI_FAKE_GPU honoured). */
    orch_sample_fn sample;
    void *sample_arg;
    const probe_options *probe; /* borrowed for the call */
    int poll_ms;                /* sampling while PENDING; 0: 250 (watch.fast_interval_ms) */
    orch_rsv_fn on_change;      /* every state change; may be NULL */
    void *arg;
    struct events *bus;      /* borrowed; NULL: none */
    struct metrics *metrics; /* borrowed; NULL: none */
} orch_rsv_opts;

typedef struct orch_rsv orch_rsv;

/* Creates the reservation book for orchestrator o (which must outlive it).
 * Free with orch_rsv_free before orch_free. */
int orch_rsv_new(uv_loop_t *uv, orch *o, const orch_rsv_opts *opts, orch_rsv **out,
                 genai_error *err);

/* Ends every reservation (RELEASED), releases its holds and promised memory,
 * closes the handles (the loop must run afterwards). Accepts NULL. */
void orch_rsv_free(orch_rsv *b);

/*
 * Asks for bytes of device (a GPU index or ORCH_RSV_HOST) for duration_s
 * seconds (1 .. ORCH_RSV_MAX_S) from now; reason is copied (truncated).
 * *id gets the reservation's id. GENAI_EBAD_ARG for zero bytes, a bad
 * duration or a device the machine lacks; GENAI_ENO_FIT when bytes exceed
 * the place's total (it could never be freed); GENAI_EBUSY when too many are
 * active; a probe failure's code. The reservation may be HELD at return.
 */
int orch_rsv_request(orch_rsv *b, int device, uint64_t bytes, uint32_t duration_s,
                     const char *reason, uint64_t *id, genai_error *err);

/* Releases a reservation (PENDING or HELD). GENAI_ENOT_FOUND for an unknown
 * or ended one. */
int orch_rsv_release(orch_rsv *b, uint64_t id);

/* A reservation (active or recently ended), or NULL. Valid until the loop
 * runs again. */
const orch_reservation *orch_rsv_get(const orch_rsv *b, uint64_t id);

/* All known reservations, oldest first: *n gets the count. Valid until the
 * loop runs again. */
const orch_reservation *orch_rsv_list(const orch_rsv *b, size_t *n);

/* Reservations PENDING or HELD. */
size_t orch_rsv_active(const orch_rsv *b);

/* "pending", "held", "released", "expired". Static. */
const char *orch_rsv_state_name(orch_rsv_state st);

/* The reservation as JSON: {"id","device" (an index or "host"),"bytes",
 * "reason","state","moved","created_ms","deadline_ms","confirmed_ms",
 * "ended_ms","confirm_ms","free_bytes"}. New reference or NULL. */
struct json_t *orch_rsv_json(const orch_reservation *r);

#endif
