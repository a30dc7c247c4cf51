/*
 * sse.c - GET /v1/events: the event bus as a Server-Sent Events stream
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 *
 * Each event is written as "id: N\nevent: TYPE\ndata: JSON\n\n" (the JSON is
 * compact, so it is one line). A comment line ": ping" goes out every
 * sse_ping_s seconds so proxies keep the connection and a gone client is
 * noticed on platforms without the socket watch. A client that stops reading
 * until HTTP_STREAM_MAX_PENDING bytes wait is dropped: a slow subscriber must
 * not make the daemon buffer without bound.
 *
 * Lifetime: the stream ends when the client goes away or the server stops
 * (the abort hook), or when a write fails. Ending unsubscribes, ends the HTTP
 * stream and closes the ping timer; the memory goes in the timer's close
 * callback.
 */
#include "http/routes.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"

#include <inttypes.h>
#include <string.h>

typedef struct sse {
    http_request *req; /* NULL once ended */
    events_sub *sub;
    uv_timer_t ping;
} sse;

static void sse_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static void sse_end(sse *s)
{
    if (s->req == NULL)
        return;
    http_request *req = s->req;
    s->req = NULL;
    events_unsubscribe(s->sub);
    s->sub = NULL;
    uv_timer_stop(&s->ping);
    uv_close((uv_handle_t *)&s->ping, sse_closed);
    http_stream_end(req);
}

static void sse_write(sse *s, const char *text, size_t len)
{
    int rc = http_stream_write(s->req, text, len);
    if (rc < 0) {
        if (rc == GENAI_ETOO_LARGE)
            LOG_WARN("http", "dropping an event stream whose client does not read");
        sse_end(s);
    }
}

static void on_event(void *arg, const event *ev)
{
    sse *s = arg;
    if (s->req == NULL)
        return;
    sbuf b = SBUF_INIT;
    sbuf_printf(&b, "id: %" PRIu64 "\nevent: %s\ndata: ", ev->id, ev->type);
    sbuf_append(&b, ev->json, ev->json_len);
    sbuf_puts(&b, "\n\n");
    if (sbuf_error(&b) < 0)
        sse_end(s);
    else
        sse_write(s, b.data, b.len);
    sbuf_free(&b);
}

static void on_ping(uv_timer_t *t)
{
    sse *s = t->data;
    static const char ping[] = ": ping\n\n";
    if (s->req != NULL)
        sse_write(s, ping, sizeof(ping) - 1);
}

static void on_abort(http_request *req, void *arg)
{
    (void)req;
    sse_end(arg);
}

void http_h_events(http_request *req)
{
    http_server *srv = http_req_server(req);
    sse *s = mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    uv_timer_init(loop_uv(http_server_loop(srv)), &s->ping);
    s->ping.data = s;
    if (events_subscribe(http_server_events(srv), on_event, s, &s->sub) < 0) {
        uv_close((uv_handle_t *)&s->ping, sse_closed);
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    static const char *const headers[] = {"Cache-Control", "no-store", "X-Accel-Buffering", "no",
                                          NULL};
    if (http_stream_begin(req, 200, "text/event-stream", headers) < 0) {
        events_unsubscribe(s->sub);
        uv_close((uv_handle_t *)&s->ping, sse_closed);
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    s->req = req;
    http_req_on_abort(req, on_abort, s);
    uint64_t every = (uint64_t)http_server_config(srv)->sse_ping_s * 1000u;
    uv_timer_start(&s->ping, on_ping, every, every);
    /* The first bytes flush the headers, so the client knows it is
     * subscribed before any event happens. */
    static const char hello[] = ": genai events\nretry: 3000\n\n";
    sse_write(s, hello, sizeof(hello) - 1);
}
