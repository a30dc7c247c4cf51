/*
 * context.h - the library context (struct genai) as the files of src/api
 * that implement include/genai.h share it: context.c (configuration,
 * registry, pulls, events), llm_api.c (the LLM and chat), image_api.c
 * (image jobs).
 *
 * The loop thread owns svc (the runtime service of api/service.h: the
 * orchestrator behind the registry), the bus and the event subscription;
 * other threads reach them only through loop_post / loop_call_wait.
 */
#ifndef GENAI_API_CONTEXT_H
#define GENAI_API_CONTEXT_H

#include "genai.h"

#include "api/service.h"
#include "core/config.h"
#include "core/events.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "store/store.h"

#include <jansson.h>
#include <pthread.h>

typedef struct api_pull api_pull;

struct genai {
    genai_config cfg;
    loop *l;
    store *st;

    /* Loop thread only. */
    svc *svc;   /* the orchestrator behind the registry */
    metrics *m; /* the orchestrator's counters (not served by the library) */
    events *bus;
    events_sub *sub;
    genai_event_fn event_fn;
    void *event_ud;

    pthread_mutex_t mu; /* guards pulls */
    api_pull *pulls;
};

/* JSON text of v (a reference stolen; NULL counts as out of memory) in the
 * allocation funnel's memory, into *out (mem_free / genai_free_string). */
int api_dump_json(json_t *v, char **out, genai_error *err);

/* The failure of a service answer into err: its code, with the detail and
 * the suggestion. Returns r->code. */
int api_reply_error(const svc_reply *r, genai_error *err);

/* GENAI_EBUSY with a detail when called on g's loop thread (from a genai
 * callback), where waiting for the loop would deadlock; else 0. */
int api_not_on_loop(genai *g, const char *fn, genai_error *err);

#endif
