/*
 * events.c - the event bus (see events.h).
 *
 * Subscribers sit in a singly linked list in subscription order. While the
 * bus is delivering ('depth' > 0) an unsubscribe only marks the entry dead,
 * and the outermost delivery unlinks the dead ones when it finishes, so a
 * callback can drop any subscription without invalidating the walk. An event
 * published from inside a callback is queued and delivered after the current
 * one, so every subscriber sees one order.
 */
#include "core/events.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct events_sub {
    events_sub *next;
    events *bus;
    events_fn fn;
    void *arg;
    int dead;
};

typedef struct pending {
    struct pending *next;
    event ev;
    char *type;
    char *json;
} pending;

struct events {
    events_sub *subs;
    size_t n_live;
    uint64_t last_id;
    int depth;
    pending *q_head, *q_tail;
};

#define TYPE_MAX 64

int events_new(events **out)
{
    events *b = mem_calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    *out = b;
    return 0;
}

static void pending_free(pending *p)
{
    mem_free(p->type);
    mem_free(p->json);
    mem_free(p);
}

void events_free(events *b)
{
    if (b == NULL)
        return;
    while (b->subs != NULL) {
        events_sub *s = b->subs;
        b->subs = s->next;
        mem_free(s);
    }
    while (b->q_head != NULL) {
        pending *p = b->q_head;
        b->q_head = p->next;
        pending_free(p);
    }
    mem_free(b);
}

static int valid_type(const char *t)
{
    size_t n = 0;
    for (; t[n] != '\0'; n++) {
        char c = t[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return 0;
    }
    return n > 0 && n <= TYPE_MAX;
}

static void sweep(events *b)
{
    events_sub **pp = &b->subs;
    while (*pp != NULL) {
        events_sub *s = *pp;
        if (s->dead) {
            *pp = s->next;
            mem_free(s);
        } else {
            pp = &s->next;
        }
    }
}

static void deliver(events *b, const event *ev)
{
    for (events_sub *s = b->subs; s != NULL; s = s->next)
        if (!s->dead)
            s->fn(s->arg, ev);
}

int64_t events_publish(events *b, const char *type, json_t *data)
{
    if (type == NULL || !valid_type(type) || (data != NULL && !json_is_object(data))) {
        json_decref(data);
        return GENAI_EBAD_ARG;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    json_t *obj = json_object();
    pending *p = mem_calloc(1, sizeof(*p));
    if (obj == NULL || p == NULL)
        goto nomem;
    uint64_t id = b->last_id + 1;
    if (json_object_set_new(obj, "id", json_integer((json_int_t)id)) != 0 ||
        json_object_set_new(obj, "time_ms", json_integer(now_ms)) != 0 ||
        json_object_set_new(obj, "type", json_string(type)) != 0 ||
        (data != NULL ? json_object_set(obj, "data", data)
                      : json_object_set_new(obj, "data", json_object())) != 0)
        goto nomem;
    p->json = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    p->type = mem_strdup(type);
    if (p->json == NULL || p->type == NULL)
        goto nomem;
    /* json_dumps uses jansson's allocator (malloc); keep one funnel. */
    char *copy = mem_strdup(p->json);
    free(p->json);
    p->json = copy;
    if (p->json == NULL)
        goto nomem;
    json_decref(obj);
    json_decref(data);
    b->last_id = id;
    p->ev = (event){id, now_ms, p->type, p->json, strlen(p->json)};

    if (b->q_tail != NULL)
        b->q_tail->next = p;
    else
        b->q_head = p;
    b->q_tail = p;
    if (b->depth > 0)
        return (int64_t)id; /* the outer delivery picks it up */

    b->depth++;
    while (b->q_head != NULL) {
        pending *cur = b->q_head;
        deliver(b, &cur->ev);
        b->q_head = cur->next;
        if (b->q_head == NULL)
            b->q_tail = NULL;
        pending_free(cur);
    }
    b->depth--;
    sweep(b);
    return (int64_t)id;

nomem:
    if (p != NULL)
        pending_free(p);
    json_decref(obj);
    json_decref(data);
    return -ENOMEM;
}

int events_subscribe(events *b, events_fn fn, void *arg, events_sub **out)
{
    events_sub *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->bus = b;
    s->fn = fn;
    s->arg = arg;
    events_sub **pp = &b->subs;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = s;
    b->n_live++;
    if (out != NULL)
        *out = s;
    return 0;
}

void events_unsubscribe(events_sub *s)
{
    if (s == NULL || s->dead)
        return;
    events *b = s->bus;
    s->dead = 1;
    b->n_live--;
    if (b->depth == 0)
        sweep(b);
}

size_t events_subscribers(const events *b)
{
    return b->n_live;
}

uint64_t events_last_id(const events *b)
{
    return b->last_id;
}
