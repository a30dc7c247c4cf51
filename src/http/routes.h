/*
 * routes.h - the built-in route table and its handlers.
 *
 * To add an endpoint, write a handler (see server.h for the contract) and add
 * one line to http_routes in routes.c.
 */
#ifndef GENAI_HTTP_ROUTES_H
#define GENAI_HTTP_ROUTES_H

#include "http/server.h"

extern const http_route http_routes[];
extern const size_t http_n_routes;

/* GET /health: {"status":"ok"}. Public (no API key). */
void http_h_health(http_request *req);
/* GET /v1/system: the probe snapshot (docs/system.md), probed on a worker. */
void http_h_system(http_request *req);
/* GET /metrics: Prometheus text exposition. */
void http_h_metrics(http_request *req);
/* GET /v1/events: the event bus as Server-Sent Events (sse.c). */
void http_h_events(http_request *req);

#endif
