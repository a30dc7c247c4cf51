/*
 * reserve_api.c - waiting on reservations, and the C API's blocking
 * genai_reserve / genai_reservation_release (see reserve_api.h).
 *
 * A wait is a node on its list with a timer for its timeout. It is answered
 * exactly once: by the book's change callback (api_rsv_waits_changed), by
 * its timer, or by api_rsv_waits_free. Answering unlinks it, stops its timer
 * and closes it; the node is freed by the close callback, and the list
 * itself once its last timer is closed after api_rsv_waits_free.
 *
 * The blocking calls run their whole exchange on the loop thread inside one
 * loop_call_wait: the request, then a wait whose answer completes the call.
 * The caller's genai_error is written only on the loop thread while the
 * caller sleeps in loop_call_wait, so it needs no lock.
 */
#include "api/reserve_api.h"

#include "api/service.h"
#include "core/alloc.h"
#include "core/log.h"
#include "genai.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define MOD "reserve"

typedef struct rsv_wait rsv_wait;

struct rsv_wait {
    rsv_wait *prev, *next;
    api_rsv_waits *ws;
    uint64_t id;
    api_rsv_wait_fn fn;
    void *arg;
    uv_timer_t timer;
};

struct api_rsv_waits {
    uv_loop_t *uv;
    rsv_wait *head;
    int open;  /* timers not yet closed */
    int freed; /* api_rsv_waits_free ran: the last close frees the list */
};

int api_rsv_waits_new(uv_loop_t *uv, api_rsv_waits **out, genai_error *err)
{
    api_rsv_waits *ws = mem_calloc(1, sizeof(*ws));
    if (ws == NULL)
        return err_set(err, -ENOMEM, "reservation waits");
    ws->uv = uv;
    *out = ws;
    return 0;
}

static void wait_closed(uv_handle_t *h)
{
    rsv_wait *w = h->data;
    api_rsv_waits *ws = w->ws;
    mem_free(w);
    if (--ws->open == 0 && ws->freed)
        mem_free(ws);
}

/* Unlinks w, answers it and closes it. */
static void answer(rsv_wait *w, int code, const orch_reservation *r)
{
    api_rsv_waits *ws = w->ws;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        ws->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wait_closed);
    w->fn(w->arg, code, r);
}

void api_rsv_waits_free(api_rsv_waits *ws)
{
    if (ws == NULL)
        return;
    ws->freed = 1;
    while (ws->head != NULL)
        answer(ws->head, GENAI_ECANCELLED, NULL);
    if (ws->open == 0)
        mem_free(ws);
}

static int is_final(const orch_reservation *r)
{
    return r->state != ORCH_RSV_PENDING;
}

static int code_of(const orch_reservation *r)
{
    return r->state == ORCH_RSV_HELD ? 0 : GENAI_ECANCELLED;
}

void api_rsv_waits_changed(void *arg, const orch_reservation *r)
{
    api_rsv_waits *ws = arg;
    if (ws == NULL || ws->freed || !is_final(r))
        return;
    /* Answering may add or answer other waits: restart from the head. */
    for (;;) {
        rsv_wait *w = ws->head;
        while (w != NULL && w->id != r->id)
            w = w->next;
        if (w == NULL)
            return;
        answer(w, code_of(r), r);
    }
}

static void on_timeout(uv_timer_t *t)
{
    rsv_wait *w = t->data;
    answer(w, GENAI_ETIMEOUT, NULL);
}

int api_rsv_wait(api_rsv_waits *ws, const orch_rsv *b, uint64_t id, uint64_t timeout_ms,
                 api_rsv_wait_fn fn, void *arg, genai_error *err)
{
    const orch_reservation *r = orch_rsv_get(b, id);
    if (r == NULL)
        return err_set(err, GENAI_ENOT_FOUND, "no reservation %" PRIu64, id);
    if (is_final(r)) {
        fn(arg, code_of(r), r);
        return 0;
    }
    if (ws->freed)
        return err_set(err, GENAI_ECANCELLED, "genai is shutting down");
    rsv_wait *w = mem_calloc(1, sizeof(*w));
    if (w == NULL)
        return err_set(err, -ENOMEM, "waiting on reservation %" PRIu64, id);
    w->ws = ws;
    w->id = id;
    w->fn = fn;
    w->arg = arg;
    uv_timer_init(ws->uv, &w->timer);
    w->timer.data = w;
    ws->open++;
    if (timeout_ms > 0)
        uv_timer_start(&w->timer, on_timeout, timeout_ms, 0);
    w->next = ws->head;
    if (ws->head != NULL)
        ws->head->prev = w;
    ws->head = w;
    return 0;
}

/* ---- the blocking calls ------------------------------------------------------ */

typedef struct rsv_call {
    svc *s;
    int device;
    uint64_t bytes;
    uint32_t duration_s;
    const char *reason;
    uint64_t timeout_ms;
    uint64_t id;
    genai_error *err;
    loop_completion *c;
} rsv_call;

static void call_answered(void *arg, int code, const orch_reservation *r)
{
    rsv_call *k = arg;
    if (code == GENAI_ETIMEOUT) {
        orch_rsv *b = svc_reservations(k->s);
        if (b != NULL)
            (void)orch_rsv_release(b, k->id);
        err_set(k->err, code,
                "reservation %" PRIu64 " was not confirmed within %" PRIu64 " ms; released", k->id,
                k->timeout_ms);
    } else if (code != 0) {
        err_set(k->err, code, "reservation %" PRIu64 " %s before its memory was free", k->id,
                r == NULL                      ? "was cancelled (genai is shutting down)"
                : r->state == ORCH_RSV_EXPIRED ? "reached its deadline"
                                               : "was released");
    }
    loop_complete(k->c, code);
}

static void reserve_on_loop(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    rsv_call *k = arg;
    k->c = c;
    orch_rsv *b = svc_reservations(k->s);
    if (b == NULL) {
        loop_complete(c, err_set(k->err, GENAI_EUNAVAILABLE,
                                 "this runtime service keeps no reservation book"));
        return;
    }
    int rc = orch_rsv_request(b, k->device, k->bytes, k->duration_s, k->reason, &k->id, k->err);
    if (rc < 0) {
        loop_complete(c, rc);
        return;
    }
    rc = svc_rsv_wait(k->s, k->id, k->timeout_ms, call_answered, k, k->err);
    if (rc < 0) {
        (void)orch_rsv_release(b, k->id);
        loop_complete(c, rc);
    }
}

int api_reserve(loop *l, svc *s, int device, uint64_t bytes, uint32_t deadline_s,
                const char *reason, uint64_t timeout_ms, uint64_t *id, genai_error *err)
{
    rsv_call k = {.s = s,
                  .device = device,
                  .bytes = bytes,
                  .duration_s = deadline_s,
                  .reason = reason != NULL ? reason : "",
                  .timeout_ms = timeout_ms,
                  .err = err};
    int rc = loop_call_wait(l, reserve_on_loop, &k);
    if (rc == GENAI_ECANCELLED && k.id == 0)
        return err_set(err, rc, "genai is shutting down");
    if (rc < 0)
        return rc;
    *id = k.id;
    return 0;
}

typedef struct release_call {
    svc *s;
    uint64_t id;
    genai_error *err;
} release_call;

static void release_on_loop(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    release_call *k = arg;
    orch_rsv *b = svc_reservations(k->s);
    int rc;
    if (b == NULL)
        rc = err_set(k->err, GENAI_EUNAVAILABLE, "this runtime service keeps no reservation book");
    else if ((rc = orch_rsv_release(b, k->id)) < 0)
        err_set(k->err, rc, "no active reservation %" PRIu64, k->id);
    loop_complete(c, rc);
}

int api_release(loop *l, svc *s, uint64_t id, genai_error *err)
{
    release_call k = {s, id, err};
    int rc = loop_call_wait(l, release_on_loop, &k);
    return rc < 0 ? rc : 0;
}

/* ---- the public API ---------------------------------------------------------- */

/* A reservation never waits longer than its own life to be confirmed. */
int genai_reserve(genai *g, int device, uint64_t bytes, uint32_t deadline_s, const char *reason,
                  uint32_t timeout_ms, uint64_t *id, genai_error *err)
{
    if (g == NULL || id == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_reserve: NULL argument");
    if (device < GENAI_RESERVE_HOST)
        return err_set(err, GENAI_EBAD_ARG, "genai_reserve: device %d", device);
    loop *l;
    svc *s;
    int rc = api_ctx_runtime(g, &l, &s, err);
    if (rc < 0)
        return rc;
    uint64_t t = timeout_ms != 0 ? timeout_ms : (uint64_t)deadline_s * 1000u;
    return api_reserve(l, s, device == GENAI_RESERVE_HOST ? ORCH_RSV_HOST : device, bytes,
                       deadline_s, reason, t, id, err);
}

int genai_reservation_release(genai *g, uint64_t id, genai_error *err)
{
    if (g == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_reservation_release: NULL context");
    loop *l;
    svc *s;
    int rc = api_ctx_runtime(g, &l, &s, err);
    if (rc < 0)
        return rc;
    return api_release(l, s, id, err);
}
