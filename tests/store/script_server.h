/*
 * script_server.h - a tiny HTTP/1.1 server owned by the store tests.
 *
 * It listens on 127.0.0.1 (ephemeral port), answers each connection on its
 * own thread with one scripted reply and "Connection: close", and records the
 * exact request it received (method, target, Range, Authorization, Host) so
 * tests can assert what genai sent, as curl's own test suite does. Replies
 * can honour or ignore Range, answer 416 past the end, cut the body at a given
 * byte, stall (stop sending until the client hangs up), trickle, redirect,
 * or return any status with any body.
 */
#ifndef GENAI_TESTS_SCRIPT_SERVER_H
#define GENAI_TESTS_SCRIPT_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct ss_route {
    const char *path;     /* exact request target, e.g. "/m.gguf" or "/api?x=1" */
    int status;           /* 0: a file (200, or 206/416 for Range); else sent as is */
    const char *location; /* Location header, for redirects */
    const char *headers;  /* extra header lines, each ending in "\r\n" */
    const void *body;     /* borrowed; must outlive the server */
    size_t body_len;
    int ignore_range;     /* answer Range requests with 200 and the whole body */
    int64_t cut_at;       /* >= 0: close the connection at this body offset ... */
    int cut_times;        /* ... for this many replies */
    int64_t stall_at;     /* >= 0: stop sending at this body offset and wait ... */
    int stall_times;      /* ... for this many replies, until the client hangs up */
    size_t trickle_bytes; /* > 0: send the body in pieces of this size ... */
    unsigned trickle_ms;  /* ... with this pause between pieces */
};

/* A route with every behaviour off (cut_at and stall_at -1). */
struct ss_route ss_route_file(const char *path, const void *body, size_t len);

struct ss_request {
    char method[8];
    char target[512];
    char range[64]; /* "" when absent */
    char auth[256]; /* Authorization header, "" when absent */
    char host[128];
};

typedef struct ss_server ss_server;

/* Starts listening; NULL on failure. Stop with ss_stop. */
ss_server *ss_start(void);
int ss_port(const ss_server *s);
/* Adds a route (copied; strings and body stay borrowed), replacing one with
 * the same path. Safe while the server runs. */
void ss_route_add(ss_server *s, const struct ss_route *r);
/* Copies up to max logged requests, in arrival order; returns how many were
 * logged in total. */
size_t ss_log(ss_server *s, struct ss_request *out, size_t max);
/* Number of requests logged for target. */
size_t ss_count(ss_server *s, const char *target);
/* Forgets the request log (routes stay). */
void ss_log_clear(ss_server *s);
/* Bytes of body sent so far, all replies together. */
uint64_t ss_bytes_sent(ss_server *s);
/* Stops the server: wakes stalled replies, joins every thread, closes fds. */
void ss_stop(ss_server *s);

#endif
