/*
 * reserve.c - reservations (see reserve.h for the life of one).
 *
 * The book is a fixed array: active reservations first come, first
 * confirmed, plus the most recent ended ones for GET. Two timers: the poll
 * (while any reservation is PENDING: 10 ms after a request, doubling up to
 * poll_ms) and the expiry (the
 * earliest deadline). Confirmation is cumulative per place: a PENDING
 * reservation is confirmed when the place's free memory covers the bytes of
 * every HELD reservation there plus its own, so two reservations never
 * count the same free bytes.
 */
#include "orch/reserve.h"

#include "core/alloc.h"
#include "core/events.h"
#include "core/log.h"
#include "core/metrics.h"
#include "plan/budget.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MOD "reserve"

enum {
    DEF_POLL_MS = 250,
    /* The first poll after a request: a stop with the doubles takes ~2 ms
     * and a driver 0.5-1.5 s (memory.md §10), so start short and double up
     * to poll_ms, as the reclamation watcher does. */
    FIRST_POLL_MS = 10,
    CAP = ORCH_MAX_HOLDS + ORCH_RSV_KEEP_ENDED,
};

struct orch_rsv {
    orch *o;
    orch_rsv_opts opts;
    probe_options_owned probe_opts;
    probe_ctx *probe;
    orch_reservation r[CAP];
    uint32_t hold[CAP]; /* orch_hold id of r[i], 0 when none */
    size_t n;
    uint64_t next_id;
    uint64_t delay_ms; /* the next poll's delay (backoff up to poll_ms) */
    uv_timer_t poll, expiry;
    int handles;
};

static int is_active(const orch_reservation *r)
{
    return r->state == ORCH_RSV_PENDING || r->state == ORCH_RSV_HELD;
}

static int sample(orch_rsv *b, probe_snapshot *out, genai_error *err)
{
    if (b->opts.sample != NULL)
        return b->opts.sample(b->opts.sample_arg, out, err);
    if (b->probe == NULL) {
        int rc = probe_ctx_open(&b->probe_opts.opts, &b->probe, err);
        if (rc < 0)
            return rc;
    }
    return probe_ctx_sample(b->probe, out, err);
}

/* Free bytes on a reservation's place, and whether they are known. */
static int place_free(const probe_snapshot *s, int device, uint64_t *free_b, uint64_t *total)
{
    if (device == ORCH_RSV_HOST) {
        int known = 0;
        *total = plan_host_total(s, &known);
        *free_b = s->mem.effective_available;
        return known && s->mem.status.ok;
    }
    if (device < 0 || (uint32_t)device >= s->n_gpus || !s->gpus[device].memory.ok)
        return 0;
    *free_b = s->gpus[device].free;
    *total = s->gpus[device].total;
    return 1;
}

/* ---- events --------------------------------------------------------------- */

json_t *orch_rsv_json(const orch_reservation *r)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    json_t *reason = json_string(r->reason);
    if (json_object_set_new(j, "id", json_integer((json_int_t)r->id)) < 0 ||
        json_object_set_new(j, "device",
                            r->device == ORCH_RSV_HOST ? json_string("host")
                                                       : json_integer(r->device)) < 0 ||
        json_object_set_new(j, "bytes", json_integer((json_int_t)r->bytes)) < 0 ||
        json_object_set_new(j, "reason", reason != NULL ? reason : json_string("")) < 0 ||
        json_object_set_new(j, "state", json_string(orch_rsv_state_name(r->state))) < 0 ||
        json_object_set_new(j, "moved", json_boolean(r->moved)) < 0 ||
        json_object_set_new(j, "created_ms", json_integer((json_int_t)r->created_ms)) < 0 ||
        json_object_set_new(j, "deadline_ms", json_integer((json_int_t)r->deadline_ms)) < 0 ||
        json_object_set_new(j, "confirmed_ms",
                            r->confirmed_ms ? json_integer((json_int_t)r->confirmed_ms)
                                            : json_null()) < 0 ||
        json_object_set_new(
            j, "ended_ms", r->ended_ms ? json_integer((json_int_t)r->ended_ms) : json_null()) < 0 ||
        json_object_set_new(j, "confirm_ms",
                            r->confirmed_ms
                                ? json_integer((json_int_t)(r->confirmed_ms - r->created_ms))
                                : json_null()) < 0 ||
        json_object_set_new(j, "free_bytes", json_integer((json_int_t)r->free_seen)) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void notify(orch_rsv *b, const orch_reservation *r, const char *what)
{
    char place[16];
    if (r->device == ORCH_RSV_HOST)
        snprintf(place, sizeof(place), "host");
    else
        snprintf(place, sizeof(place), "GPU %d", r->device);
    LOG_INFO(MOD, "reservation %" PRIu64 " %s: %.2f GiB of %s (%s)", r->id, what,
             (double)r->bytes / (double)(1ull << 30), place, r->reason);
    if (b->opts.bus != NULL) {
        char type[64];
        snprintf(type, sizeof(type), "reservation.%s", what);
        json_t *data = orch_rsv_json(r);
        if (data != NULL && events_publish(b->opts.bus, type, data) < 0)
            LOG_DEBUG(MOD, "event %s not published", type);
    }
    metrics *m = b->opts.metrics;
    if (m != NULL) {
        size_t active = orch_rsv_active(b);
        metrics_gauge_set(m, "genai_reservations_active", "Reservations pending or held", NULL,
                          (double)active);
        if (strcmp(what, "confirmed") == 0)
            metrics_observe(m, "genai_reservation_confirm_seconds",
                            "Time from a reservation request to its memory observed free", NULL,
                            (double)(r->confirmed_ms - r->created_ms) / 1000.0);
        if (r->state == ORCH_RSV_RELEASED || r->state == ORCH_RSV_EXPIRED)
            metrics_counter_add(
                m, "genai_reservations_total", "Reservations ended, by how",
                r->state == ORCH_RSV_RELEASED ? "result=\"released\"" : "result=\"expired\"", 1);
    }
    if (b->opts.on_change != NULL)
        b->opts.on_change(b->opts.arg, r);
}

/* ---- bookkeeping ------------------------------------------------------------ */

/* Promised memory = the bytes of every active reservation, per place. */
static void update_promised(orch_rsv *b)
{
    plan_reserve p;
    memset(&p, 0, sizeof(p));
    for (size_t i = 0; i < b->n; i++) {
        const orch_reservation *r = &b->r[i];
        if (!is_active(r))
            continue;
        uint64_t *slot = r->device == ORCH_RSV_HOST ? &p.host : &p.gpu[r->device];
        *slot = *slot > UINT64_MAX - r->bytes ? UINT64_MAX : *slot + r->bytes;
    }
    plan_promised_set(&p);
}

static void on_expiry(uv_timer_t *t);
static void on_poll(uv_timer_t *t);

static void arm_expiry(orch_rsv *b)
{
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < b->n; i++)
        if (is_active(&b->r[i]) && b->r[i].deadline_ms < first)
            first = b->r[i].deadline_ms;
    if (first == UINT64_MAX) {
        uv_timer_stop(&b->expiry);
        return;
    }
    uint64_t now = orch_now_ms();
    uv_timer_start(&b->expiry, on_expiry, first > now ? first - now : 0, 0);
}

static void end(orch_rsv *b, size_t i, orch_rsv_state st)
{
    orch_reservation *r = &b->r[i];
    r->state = st;
    r->ended_ms = orch_now_ms();
    /* Promise the memory no more before the LLM is let back, so its reload
     * plans with it. */
    update_promised(b);
    if (b->hold[i] != 0) {
        orch_unhold(b->o, b->hold[i]);
        b->hold[i] = 0;
    }
    notify(b, r, st == ORCH_RSV_RELEASED ? "released" : "expired");
}

/* Confirms, in creation order, every PENDING reservation the snapshot's free
 * memory covers (on top of what the HELD ones on the same place take).
 * Returns how many are still PENDING. */
static size_t evaluate(orch_rsv *b, const probe_snapshot *s)
{
    uint64_t taken[PLAN_MAX_GPUS + 1]; /* [PLAN_MAX_GPUS] = host */
    memset(taken, 0, sizeof(taken));
    for (size_t i = 0; i < b->n; i++) {
        const orch_reservation *r = &b->r[i];
        if (r->state == ORCH_RSV_HELD)
            taken[r->device == ORCH_RSV_HOST ? PLAN_MAX_GPUS : (size_t)r->device] += r->bytes;
    }
    size_t pending = 0;
    uint64_t now = orch_now_ms();
    for (size_t i = 0; i < b->n; i++) {
        orch_reservation *r = &b->r[i];
        if (r->state != ORCH_RSV_PENDING)
            continue;
        size_t slot = r->device == ORCH_RSV_HOST ? PLAN_MAX_GPUS : (size_t)r->device;
        uint64_t free_b = 0, total = 0;
        if (!place_free(s, r->device, &free_b, &total)) {
            pending++;
            continue;
        }
        r->free_seen = free_b;
        if (free_b >= taken[slot] && free_b - taken[slot] >= r->bytes) {
            r->state = ORCH_RSV_HELD;
            r->confirmed_ms = now;
            taken[slot] += r->bytes;
            notify(b, r, "confirmed");
        } else {
            pending++;
        }
    }
    return pending;
}

static void poll_now(orch_rsv *b)
{
    probe_snapshot s;
    genai_error e;
    genai_error_clear(&e);
    size_t pending = 0;
    if (sample(b, &s, &e) == 0) {
        pending = evaluate(b, &s);
        probe_snapshot_free(&s);
    } else {
        LOG_WARN(MOD, "sampling memory: %s", e.detail);
        for (size_t i = 0; i < b->n; i++)
            pending += b->r[i].state == ORCH_RSV_PENDING;
    }
    if (pending > 0) {
        uv_timer_start(&b->poll, on_poll, b->delay_ms, 0);
        b->delay_ms = b->delay_ms * 2 > (uint64_t)b->opts.poll_ms ? (uint64_t)b->opts.poll_ms
                                                                  : b->delay_ms * 2;
    } else {
        uv_timer_stop(&b->poll);
    }
}

static void on_poll(uv_timer_t *t)
{
    poll_now(t->data);
}

static void on_expiry(uv_timer_t *t)
{
    orch_rsv *b = t->data;
    uint64_t now = orch_now_ms();
    for (size_t i = 0; i < b->n; i++)
        if (is_active(&b->r[i]) && b->r[i].deadline_ms <= now)
            end(b, i, ORCH_RSV_EXPIRED);
    arm_expiry(b);
}

/* A free slot: the end, or the oldest ended reservation's. */
static int take_slot(orch_rsv *b, size_t *out)
{
    if (b->n < CAP) {
        *out = b->n++;
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (!is_active(&b->r[i])) {
            memmove(&b->r[i], &b->r[i + 1], (b->n - i - 1) * sizeof(b->r[0]));
            memmove(&b->hold[i], &b->hold[i + 1], (b->n - i - 1) * sizeof(b->hold[0]));
            *out = b->n - 1;
            return 0;
        }
    }
    return GENAI_EBUSY;
}

/* ---- API ---------------------------------------------------------------------- */

int orch_rsv_new(uv_loop_t *uv, orch *o, const orch_rsv_opts *opts, orch_rsv **out,
                 genai_error *err)
{
    orch_rsv *b = mem_calloc(1, sizeof(*b));
    if (b == NULL)
        return err_set(err, -ENOMEM, "reservations");
    b->o = o;
    b->opts = *opts;
    b->opts.probe = NULL;
    if (b->opts.poll_ms <= 0)
        b->opts.poll_ms = DEF_POLL_MS;
    if (probe_options_own(&b->probe_opts, opts->probe) < 0) {
        mem_free(b);
        return err_set(err, -ENOMEM, "reservation options");
    }
    b->next_id = 1;
    uv_timer_init(uv, &b->poll);
    uv_timer_init(uv, &b->expiry);
    b->poll.data = b->expiry.data = b;
    b->handles = 2;
    *out = b;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    orch_rsv *b = h->data;
    if (--b->handles == 0)
        mem_free(b);
}

void orch_rsv_free(orch_rsv *b)
{
    if (b == NULL)
        return;
    b->opts.on_change = NULL; /* no callback from here on */
    for (size_t i = 0; i < b->n; i++)
        if (is_active(&b->r[i]))
            end(b, i, ORCH_RSV_RELEASED);
    plan_promised_set(NULL);
    probe_ctx_close(b->probe);
    probe_options_owned_free(&b->probe_opts);
    uv_close((uv_handle_t *)&b->poll, on_closed);
    uv_close((uv_handle_t *)&b->expiry, on_closed);
}

int orch_rsv_request(orch_rsv *b, int device, uint64_t bytes, uint32_t duration_s,
                     const char *reason, uint64_t *id, genai_error *err)
{
    if (bytes == 0)
        return err_set(err, GENAI_EBAD_ARG, "a reservation needs a number of bytes");
    if (duration_s == 0 || duration_s > ORCH_RSV_MAX_S)
        return err_set(err, GENAI_EBAD_ARG, "a reservation lasts 1 to %d seconds, not %u",
                       ORCH_RSV_MAX_S, duration_s);
    if (device != ORCH_RSV_HOST && (device < 0 || device >= PLAN_MAX_GPUS))
        return err_set(err, GENAI_EBAD_ARG, "no GPU %d", device);
    if (orch_rsv_active(b) >= ORCH_MAX_HOLDS)
        return err_set(err, GENAI_EBUSY, "%d reservations are active already", ORCH_MAX_HOLDS);
    probe_snapshot s;
    int rc = sample(b, &s, err);
    if (rc < 0)
        return err_prefix(err, "sampling memory");
    uint64_t free_b = 0, total = 0;
    if (!place_free(&s, device, &free_b, &total)) {
        probe_snapshot_free(&s);
        if (device == ORCH_RSV_HOST)
            return err_set(err, GENAI_EBAD_ARG, "host memory is unknown on this machine");
        return err_set(err, GENAI_EBAD_ARG, "no GPU %d with known memory on this machine", device);
    }
    if (bytes > total) {
        probe_snapshot_free(&s);
        return err_set(err, GENAI_ENO_FIT,
                       "%llu MiB cannot be made free: the %s has %llu MiB in all",
                       (unsigned long long)(bytes >> 20), device == ORCH_RSV_HOST ? "host" : "GPU",
                       (unsigned long long)(total >> 20));
    }
    size_t i;
    if (take_slot(b, &i) < 0) {
        probe_snapshot_free(&s);
        return err_set(err, GENAI_EBUSY, "too many reservations");
    }
    uint64_t now = orch_now_ms();
    orch_reservation *r = &b->r[i];
    memset(r, 0, sizeof(*r));
    b->hold[i] = 0;
    r->id = b->next_id++;
    r->device = device;
    r->bytes = bytes;
    snprintf(r->reason, sizeof(r->reason), "%s", reason != NULL ? reason : "");
    r->state = ORCH_RSV_PENDING;
    r->created_ms = now;
    r->deadline_ms = now + (uint64_t)duration_s * 1000u;
    r->free_seen = free_b;
    uint64_t rid = r->id;
    update_promised(b);
    notify(b, r, "requested");
    /* The cheapest move first: none, when the memory is free already. */
    if (evaluate(b, &s) > 0 && b->r[i].state == ORCH_RSV_PENDING) {
        char why[ORCH_RSV_REASON_MAX + 64];
        snprintf(why, sizeof(why), "reservation %" PRIu64 ": %s", rid, b->r[i].reason);
        genai_error he;
        if (orch_hold(b->o, why, &b->hold[i], &he) == 0)
            b->r[i].moved = 1;
        else
            LOG_WARN(MOD, "reservation %" PRIu64 ": cannot hold the orchestrator: %s", rid,
                     he.detail);
        b->delay_ms = FIRST_POLL_MS < b->opts.poll_ms ? FIRST_POLL_MS : (uint64_t)b->opts.poll_ms;
        uv_timer_start(&b->poll, on_poll, b->delay_ms, 0);
    }
    probe_snapshot_free(&s);
    arm_expiry(b);
    *id = rid;
    return 0;
}

int orch_rsv_release(orch_rsv *b, uint64_t id)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->r[i].id == id && is_active(&b->r[i])) {
            end(b, i, ORCH_RSV_RELEASED);
            arm_expiry(b);
            return 0;
        }
    }
    return GENAI_ENOT_FOUND;
}

const orch_reservation *orch_rsv_get(const orch_rsv *b, uint64_t id)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->r[i].id == id)
            return &b->r[i];
    return NULL;
}

const orch_reservation *orch_rsv_list(const orch_rsv *b, size_t *n)
{
    *n = b->n;
    return b->r;
}

size_t orch_rsv_active(const orch_rsv *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += is_active(&b->r[i]);
    return n;
}

const char *orch_rsv_state_name(orch_rsv_state st)
{
    static const char *const names[] = {"pending", "held", "released", "expired"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unknown";
}
