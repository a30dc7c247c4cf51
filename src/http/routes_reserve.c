/*
 * routes_reserve.c - reservations over HTTP (docs/api.md "Reservations"):
 * POST /api/reservations, GET /api/reservations, GET and DELETE
 * /api/reservations/{id}.
 *
 * A thin layer over the service's reservation book (orch/reserve.h), on the
 * loop thread like every handler. POST answers 202 with the reservation at
 * once, or with ?wait=1 (or "wait": true) when it is confirmed (200) or has
 * ended unconfirmed (409 reservation_failed); a client that leaves while
 * waiting does not release it (DELETE does). The list also carries genai's
 * share of the machine right now (budgets, reserves, promised bytes, what
 * genai may still plan), from a probe taken on a libuv worker and the
 * orchestrator's residents, so `genai status` can show it.
 *
 * States on the wire: pending, confirmed (the book's "held"), released,
 * expired, and failed: expired before it was ever confirmed.
 */
#include "http/native.h"

#include "api/service.h"
#include "core/alloc.h"
#include "orch/reserve.h"
#include "plan/budget.h"
#include "sys/probe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define RSV_PREFIX "/api/reservations/"

static int need_book(http_request *req, svc **s, orch_rsv **b)
{
    *s = http_req_svc(req);
    *b = *s != NULL ? svc_reservations(*s) : NULL;
    if (*b != NULL)
        return 0;
    http_reply_error(req, 503, "unavailable", "this server keeps no reservations",
                     "start the daemon with 'genai serve'");
    return -1;
}

/* The book's JSON with the state names of the HTTP API. */
static json_t *rsv_json(const orch_reservation *r)
{
    json_t *j = orch_rsv_json(r);
    if (j == NULL)
        return NULL;
    const char *st = orch_rsv_state_name(r->state);
    if (r->state == ORCH_RSV_HELD)
        st = "confirmed";
    else if (r->state == ORCH_RSV_EXPIRED && r->confirmed_ms == 0)
        st = "failed";
    json_object_set_new(j, "state", json_string(st));
    if (strcmp(st, "failed") == 0)
        json_object_set_new(j, "error", json_string("the memory was not free before the deadline"));
    return j;
}

static void reply_rsv(http_request *req, int status, const orch_reservation *r)
{
    json_t *j = rsv_json(r);
    if (j == NULL)
        http_reply_error(req, 500, "internal", "out of memory", NULL);
    else
        http_reply_json(req, status, j);
}

/* Errors of orch_rsv_request and orch_rsv_release, with stable codes. */
static void reply_rsv_error(http_request *req, int rc, const genai_error *e)
{
    const char *msg = e != NULL && e->detail[0] ? e->detail : genai_strerror(rc);
    switch (rc) {
    case GENAI_EBAD_ARG:
        http_reply_error(req, 400, "bad_request", msg, NULL);
        return;
    case GENAI_ENO_FIT:
        http_reply_error(req, 422, "does_not_fit", msg, "ask for less than the place has in all");
        return;
    case GENAI_EBUSY:
        http_reply_error(req, 429, "too_many_reservations", msg, "release one first");
        return;
    case GENAI_ENOT_FOUND:
        http_reply_error(req, 404, "reservation_not_found", msg, NULL);
        return;
    default:
        http_reply_rc(req, rc, e);
        return;
    }
}

/* ---- POST /api/reservations ----------------------------------------------------- */

typedef struct rsv_req {
    http_request *req;
    svc *s;
} rsv_req;

static void waited(void *arg, int code, const orch_reservation *r)
{
    rsv_req *q = arg;
    if (q->req == NULL) { /* the client left */
        mem_free(q);
        return;
    }
    http_req_on_abort(q->req, NULL, NULL);
    if (code == 0 && r != NULL)
        reply_rsv(q->req, 200, r);
    else if (code == GENAI_ECANCELLED && r != NULL) {
        json_t *j = rsv_json(r);
        char *body = http_error_body(409, "reservation_failed",
                                     r->state == ORCH_RSV_EXPIRED
                                         ? "the reservation reached its deadline unconfirmed"
                                         : "the reservation was released before it was confirmed",
                                     NULL);
        json_t *err = body != NULL ? json_loads(body, 0, NULL) : NULL;
        mem_free(body);
        if (j != NULL && err != NULL && json_object_set_new(err, "reservation", j) == 0) {
            http_reply_json(q->req, 409, err);
        } else {
            json_decref(err);
            http_reply_error(q->req, 409, "reservation_failed", "ended unconfirmed", NULL);
        }
    } else
        http_reply_error(q->req, 503, "unavailable", "genai is shutting down", NULL);
    mem_free(q);
}

/* The client left (or the server stops) while waiting: the reservation goes
 * on; the request is finished now and the wait, when answered, only frees
 * its record. */
static void wait_abort(http_request *req, void *arg)
{
    rsv_req *q = arg;
    http_req_on_abort(req, NULL, NULL);
    q->req = NULL;
    http_reply_error(req, 499, "cancelled", "the client went away", NULL);
}

static int parse_device(json_t *v, int *device)
{
    if (v == NULL || json_is_null(v)) {
        *device = 0;
        return 0;
    }
    if (json_is_string(v) && strcmp(json_string_value(v), "host") == 0) {
        *device = ORCH_RSV_HOST;
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 64) {
        *device = (int)json_integer_value(v);
        return 0;
    }
    return -1;
}

void http_h_api_reservation_create(http_request *req)
{
    svc *s;
    orch_rsv *b;
    if (need_book(req, &s, &b) < 0)
        return;
    json_t *body = http_req_json(req);
    json_t *bytes = json_object_get(body, "bytes");
    json_t *deadline = json_object_get(body, "deadline_s");
    json_t *reason = json_object_get(body, "reason");
    json_t *wait_j = json_object_get(body, "wait");
    int device;
    if (!json_is_object(body) || parse_device(json_object_get(body, "device"), &device) < 0 ||
        !json_is_integer(bytes) || json_integer_value(bytes) <= 0 || !json_is_integer(deadline) ||
        json_integer_value(deadline) <= 0 || json_integer_value(deadline) > ORCH_RSV_MAX_S ||
        (reason != NULL && !json_is_string(reason)) ||
        (wait_j != NULL && !json_is_boolean(wait_j))) {
        http_reply_error(req, 400, "bad_request",
                         "expected {\"device\": 0 | \"host\", \"bytes\": N > 0, \"deadline_s\": "
                         "1..86400, \"reason\": \"...\"?, \"wait\": bool?}",
                         NULL);
        return;
    }
    const char *q = http_req_query(req, "wait");
    int wait = json_is_true(wait_j) || (q != NULL && strcmp(q, "1") == 0);
    genai_error e;
    genai_error_clear(&e);
    uint64_t id = 0;
    int rc = orch_rsv_request(b, device, (uint64_t)json_integer_value(bytes),
                              (uint32_t)json_integer_value(deadline),
                              reason != NULL ? json_string_value(reason) : "", &id, &e);
    if (rc < 0) {
        reply_rsv_error(req, rc, &e);
        return;
    }
    const orch_reservation *r = orch_rsv_get(b, id);
    if (!wait || r->state != ORCH_RSV_PENDING) {
        reply_rsv(req, wait && r->state == ORCH_RSV_HELD ? 200 : 202, r);
        return;
    }
    rsv_req *w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        reply_rsv(req, 202, r);
        return;
    }
    w->req = req;
    w->s = s;
    /* Never longer than the reservation lives: it ends by then. */
    if ((rc = svc_rsv_wait(s, id, 0, waited, w, &e)) < 0) {
        mem_free(w);
        reply_rsv_error(req, rc, &e);
        return;
    }
    http_req_on_abort(req, wait_abort, w);
}

/* ---- GET /api/reservations ------------------------------------------------------- */

typedef struct list_work {
    uv_work_t work;
    http_request *req;
    probe_snapshot snap;
    uint64_t snap_ms;
    int rc;
    genai_error err;
} list_work;

static void list_probe(uv_work_t *w)
{
    list_work *lw = w->data;
    lw->snap_ms = orch_now_ms();
    lw->rc = probe_take(NULL, &lw->snap, &lw->err);
}

static json_t *budget_json(uint64_t b)
{
    return b == PLAN_NO_BUDGET ? json_null() : json_integer((json_int_t)b);
}

/* genai's share now: per place the budget, the reserve, the bytes promised
 * to reservations, what genai holds and may still plan (docs/budgets.md). */
static json_t *share_json(svc *s, const probe_snapshot *snap, uint64_t snap_ms)
{
    orch *o = svc_orch(s);
    plan_resident res[ORCH_RES_MAX];
    uint32_t n = orch_res_residents(orch_get_residency(o), 0, snap_ms, res, ORCH_RES_MAX);
    plan_fit_env env;
    plan_fit_env_init(&env, snap);
    env.residents = res;
    env.n_residents = n;
    plan_reserve promised;
    plan_promised_get(&promised);
    int32_t pids[16];
    size_t np = orch_child_pids(o, pids, 16);
    plan_usage usage;
    plan_usage_split(snap, pids, np, &usage);

    json_t *j = json_object();
    json_t *host = json_object();
    json_t *gpus = json_array();
    if (j == NULL || host == NULL || gpus == NULL)
        goto fail;
    uint64_t hr = env.reserve.host - (promised.host < env.reserve.host ? promised.host : 0);
    json_object_set_new(host, "budget_bytes", budget_json(env.budget.host));
    json_object_set_new(host, "reserve_bytes", json_integer((json_int_t)hr));
    json_object_set_new(host, "promised_bytes", json_integer((json_int_t)promised.host));
    json_object_set_new(host, "own_bytes", json_integer((json_int_t)plan_host_own(&env)));
    json_object_set_new(host, "usable_bytes", json_integer((json_int_t)plan_host_usable(&env)));
    for (uint32_t g = 0; g < usage.n_gpus && g < PLAN_MAX_GPUS; g++) {
        json_t *gj = json_object();
        if (gj == NULL || json_array_append_new(gpus, gj) < 0)
            goto fail;
        uint64_t r = env.reserve.gpu[g];
        uint64_t pr = promised.gpu[g] < r ? promised.gpu[g] : 0;
        json_object_set_new(gj, "index", json_integer(g));
        json_object_set_new(gj, "known", json_boolean(usage.gpu[g].known));
        json_object_set_new(gj, "budget_bytes", budget_json(env.budget.gpu[g]));
        json_object_set_new(gj, "reserve_bytes", json_integer((json_int_t)(r - pr)));
        json_object_set_new(gj, "promised_bytes", json_integer((json_int_t)promised.gpu[g]));
        json_object_set_new(gj, "own_bytes", json_integer((json_int_t)plan_gpu_own(&env, g)));
        json_object_set_new(
            gj, "others_bytes",
            json_integer((json_int_t)(usage.gpu[g].others + usage.gpu[g].unlisted)));
        json_object_set_new(gj, "usable_bytes", json_integer((json_int_t)plan_gpu_usable(&env, g)));
    }
    if (json_object_set_new(j, "host", host) < 0 || json_object_set_new(j, "gpus", gpus) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;

fail:
    json_decref(j);
    json_decref(host);
    json_decref(gpus);
    return NULL;
}

static void list_done(uv_work_t *w, int status)
{
    list_work *lw = w->data;
    http_request *req = lw->req;
    svc *s;
    orch_rsv *b;
    if (need_book(req, &s, &b) < 0)
        goto out;
    size_t n;
    const orch_reservation *all = orch_rsv_list(b, &n);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        if (json_array_append_new(arr, rsv_json(&all[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *share = status == 0 && lw->rc == 0 ? share_json(s, &lw->snap, lw->snap_ms) : NULL;
    json_t *body = arr != NULL ? json_pack("{s:o, s:I, s:o}", "reservations", arr, "active",
                                           (json_int_t)orch_rsv_active(b), "share",
                                           share != NULL ? share : json_null())
                               : NULL;
    if (body == NULL)
        http_reply_error(req, 500, "internal", "out of memory", NULL);
    else
        http_reply_json(req, 200, body);
out:
    probe_snapshot_free(&lw->snap);
    mem_free(lw);
}

void http_h_api_reservations(http_request *req)
{
    svc *s;
    orch_rsv *b;
    if (need_book(req, &s, &b) < 0)
        return;
    list_work *lw = mem_calloc(1, sizeof(*lw));
    if (lw == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    lw->req = req;
    lw->work.data = lw;
    /* No abort hook: the probe cannot be interrupted, and replying after the
     * client left is harmless (server.h). */
    int rc = uv_queue_work(loop_uv(http_server_loop(http_req_server(req))), &lw->work, list_probe,
                           list_done);
    if (rc != 0) {
        mem_free(lw);
        http_reply_error(req, 500, "internal", uv_strerror(rc), NULL);
    }
}

/* ---- GET and DELETE /api/reservations/{id} --------------------------------------- */

/* The id after the prefix: 1 and *id, or 0 after a 400 reply. */
static int rsv_id(http_request *req, uint64_t *id)
{
    const char *t = http_req_path(req) + strlen(RSV_PREFIX);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(t, &end, 10);
    if (t[0] < '1' || t[0] > '9' || *end != '\0' || errno != 0) {
        http_reply_error(req, 400, "bad_request", "a reservation id is a positive number", NULL);
        return 0;
    }
    *id = v;
    return 1;
}

void http_h_api_reservation_get(http_request *req)
{
    svc *s;
    orch_rsv *b;
    uint64_t id;
    if (need_book(req, &s, &b) < 0 || !rsv_id(req, &id))
        return;
    const orch_reservation *r = orch_rsv_get(b, id);
    if (r == NULL) {
        http_reply_error(req, 404, "reservation_not_found", "no such reservation", NULL);
        return;
    }
    reply_rsv(req, 200, r);
}

void http_h_api_reservation_delete(http_request *req)
{
    svc *s;
    orch_rsv *b;
    uint64_t id;
    if (need_book(req, &s, &b) < 0 || !rsv_id(req, &id))
        return;
    const orch_reservation *r = orch_rsv_get(b, id);
    if (r == NULL) {
        http_reply_error(req, 404, "reservation_not_found", "no such reservation", NULL);
        return;
    }
    if (r->state != ORCH_RSV_PENDING && r->state != ORCH_RSV_HELD) {
        http_reply_error(req, 409, "reservation_ended", "the reservation has ended already", NULL);
        return;
    }
    int rc = orch_rsv_release(b, id);
    if (rc < 0) {
        reply_rsv_error(req, rc, NULL);
        return;
    }
    r = orch_rsv_get(b, id);
    if (r != NULL)
        reply_rsv(req, 200, r);
    else
        http_reply_error(req, 500, "internal", "the released reservation is gone", NULL);
}
