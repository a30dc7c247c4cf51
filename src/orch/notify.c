/*
 * notify.c - log line, bus event and metrics for each orchestrator event
 * (see notify.h). The event's JSON data is {"ms","attempt","code",
 * "error","job_id","pid","reason"}; reason is the human text, made valid
 * UTF-8 (a child's stderr line may not be) by replacing bytes above 0x7e.
 */
#include "orch/notify.h"

#include "core/alloc.h"
#include "core/events.h"
#include "core/log.h"
#include "core/metrics.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MOD "orch"

static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = mem_strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p > 0x7e || ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t'))
            *p = '?';
    j = json_string(copy);
    mem_free(copy);
    return j;
}

static void publish(struct events *bus, const orch_event *ev, const char *reason)
{
    char type[64];
    snprintf(type, sizeof(type), "orch.%s", orch_event_name(ev->type));
    json_t *data = json_object();
    if (data == NULL)
        return;
    json_t *r = text_json(reason);
    if (json_object_set_new(data, "ms", json_integer((json_int_t)ev->ms)) < 0 ||
        json_object_set_new(data, "attempt", json_integer(ev->attempt)) < 0 ||
        json_object_set_new(data, "code", json_integer(ev->code)) < 0 ||
        json_object_set_new(data, "error",
                            ev->code ? json_string(genai_err_name(ev->code)) : json_null()) < 0 ||
        json_object_set_new(data, "job_id", json_integer((json_int_t)ev->job_id)) < 0 ||
        json_object_set_new(data, "pid", json_integer(ev->pid)) < 0 ||
        json_object_set_new(data, "reason", r != NULL ? r : json_string("")) < 0) {
        json_decref(data);
        return;
    }
    if (events_publish(bus, type, data) < 0)
        LOG_DEBUG(MOD, "event %s not published", type);
}

static void count(struct metrics *m, const char *name, const char *help, const char *labels)
{
    metrics_counter_add(m, name, help, labels, 1);
}

static void observe_ms(struct metrics *m, const char *name, const char *help, uint64_t ms)
{
    metrics_observe(m, name, help, NULL, (double)ms / 1000.0);
}

static void account(struct metrics *m, const orch_event *ev)
{
    switch (ev->type) {
    case ORCH_EV_OFFLOAD_STARTED:
        count(m, "genai_orch_offloads_total", "LLM offloads to make room for image jobs", NULL);
        break;
    case ORCH_EV_DRAINED:
        observe_ms(m, "genai_orch_drain_seconds", "Waiting for in-flight LLM requests", ev->ms);
        if (ev->code != 0)
            count(m, "genai_orch_drain_timeouts_total", "Drains that gave up", NULL);
        break;
    case ORCH_EV_LLM_STOPPED:
        observe_ms(m, "genai_orch_stop_seconds", "Stopping the LLM for an offload", ev->ms);
        break;
    case ORCH_EV_RECLAIMED:
        observe_ms(m, "genai_orch_reclaim_seconds", "From reap to memory observed free", ev->ms);
        if (ev->code != 0)
            count(m, "genai_orch_reclaim_timeouts_total", "Reclamation waits that timed out", NULL);
        break;
    case ORCH_EV_RELOAD_ATTEMPT:
        count(m, "genai_orch_reload_attempts_total", "LLM reload attempts", NULL);
        break;
    case ORCH_EV_LLM_READY:
        observe_ms(m, "genai_orch_load_seconds", "LLM start to READY", ev->ms);
        if (ev->attempt > 0) {
            count(m, "genai_orch_reloads_total", "LLM reloads after an offload", NULL);
            observe_ms(m, "genai_orch_reload_seconds", "LLM reload to READY", ev->ms);
        }
        break;
    case ORCH_EV_LLM_FAILED:
        count(m, "genai_orch_llm_failures_total", "LLM loads or reloads given up", NULL);
        break;
    case ORCH_EV_IMAGE_DONE:
        count(m, "genai_orch_images_total", "Image jobs finished",
              ev->code == 0 ? "result=\"ok\"" : "result=\"failed\"");
        observe_ms(m, "genai_orch_image_seconds", "Image job run time", ev->ms);
        break;
    case ORCH_EV_REQUEST_TIMEOUT:
        count(m, "genai_orch_request_timeouts_total",
              "LLM requests answered unavailable at their deadline", NULL);
        break;
    case ORCH_EV_LLM_LOADING:
    case ORCH_EV_IMAGE_PLACED:
    case ORCH_EV_IMAGE_STARTED:
        break;
    }
}

void orch_notify(struct events *bus, struct metrics *m, const orch_event *ev)
{
    const char *reason = ev->reason != NULL ? ev->reason : "";
    char code[48] = "";
    if (ev->code != 0)
        snprintf(code, sizeof(code), " %s", genai_err_name(ev->code));
    /* Only the first line of a multi-line reason goes into the log line. */
    int first = (int)strcspn(reason, "\n");
    LOG_INFO(MOD, "%s: ms=%" PRIu64 " attempt=%d job=%" PRIu64 " pid=%ld%s%s%.*s",
             orch_event_name(ev->type), ev->ms, ev->attempt, ev->job_id, (long)ev->pid, code,
             first > 0 ? ": " : "", first, reason);
    if (bus != NULL)
        publish(bus, ev, reason);
    if (m != NULL)
        account(m, ev);
}

void orch_notify_queue_wait(struct metrics *m, uint64_t waited_ms)
{
    if (m != NULL)
        observe_ms(m, "genai_orch_queue_wait_seconds", "LLM requests waiting for the LLM",
                   waited_ms);
}
