/*
 * events.h - the event bus: what happened in the daemon (a model loaded, an
 * offload started, memory reclaimed), published once and delivered to every
 * subscriber: the SSE stream GET /v1/events, the log, the C API's callback.
 *
 * An event is a type ("llm.ready") and a JSON object; the bus gives it an id
 * (1, 2, 3, ... in publication order) and a wall-clock time in milliseconds,
 * and serializes it once. Subscribers are called synchronously, in
 * subscription order, inside events_publish. A subscriber may unsubscribe
 * itself or others from its callback, and may publish (the nested event is
 * delivered after the current one, so every subscriber sees the same order).
 *
 * Threading: loop thread only. Another thread posts to the loop to publish.
 */
#ifndef GENAI_CORE_EVENTS_H
#define GENAI_CORE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct json_t;

typedef struct events events;
typedef struct events_sub events_sub;

typedef struct event {
    uint64_t id;      /* 1, 2, 3, ... */
    int64_t time_ms;  /* CLOCK_REALTIME, milliseconds since the epoch */
    const char *type; /* "llm.ready" */
    const char *json; /* {"id":..,"time_ms":..,"type":..,"data":{..}}, compact */
    size_t json_len;
} event;

/* Runs on the loop thread; ev and its strings are valid during the call only. */
typedef void (*events_fn)(void *arg, const event *ev);

/* Creates a bus; free with events_free (which drops every subscription). */
int events_new(events **out);
void events_free(events *b);

/*
 * Publishes an event. type: [a-z0-9_.]+, at most 64 bytes. data: a JSON
 * object, stolen (the bus decrefs it), or NULL for {}. Returns the event's id
 * (> 0), or GENAI_EBAD_ARG / -ENOMEM (nothing delivered).
 */
int64_t events_publish(events *b, const char *type, struct json_t *data);

/* Adds a subscriber; *out (optional) is the handle for events_unsubscribe. */
int events_subscribe(events *b, events_fn fn, void *arg, events_sub **out);

/* Removes a subscription; its callback is not called again. Accepts NULL. */
void events_unsubscribe(events_sub *s);

/* Number of live subscriptions. */
size_t events_subscribers(const events *b);

/* Id of the last event published (0 before the first). */
uint64_t events_last_id(const events *b);

#endif
