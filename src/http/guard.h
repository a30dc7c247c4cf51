/*
 * guard.h - the checks that stand between a request and a handler: the API
 * key (constant-time), the Host header (DNS rebinding), the Origin (CORS),
 * and bounded JSON parsing. Pure functions of their arguments, so they can be
 * unit-tested and fuzzed without a server; any thread.
 */
#ifndef GENAI_HTTP_GUARD_H
#define GENAI_HTTP_GUARD_H

#include "core/config.h"
#include "core/error.h"

#include <jansson.h>
#include <stddef.h>

/*
 * Compares a presented secret with the expected one in time that depends
 * only on their lengths' digest, not on where they differ: both are hashed
 * with SHA-256 and the digests compared with a branch-free loop. 1 when
 * equal. NULL counts as "".
 */
int guard_secret_equal(const char *presented, size_t plen, const char *expected, size_t elen);

/*
 * Checks "Authorization: Bearer KEY" (scheme case-insensitive) against key.
 * 1 when it matches; 0 when absent or wrong.
 */
int guard_bearer_ok(const char *authorization, const char *key);

/*
 * Whether a Host header is acceptable for a server bound to port: the
 * loopback names (127.0.0.1, localhost, [::1]), any IP literal (a rebinding
 * attack needs a DNS name), and the names in allowed ("*" allows any), each
 * with an optional ":port" that must equal port. A missing Host (HTTP/1.0) is
 * accepted. 1 when acceptable.
 */
int guard_host_ok(const char *host, unsigned port, const config_list *allowed);

/* Whether origin is in allowed (exact, case-insensitive) or allowed has "*". */
int guard_origin_ok(const char *origin, const config_list *allowed);

/*
 * Scans JSON text for its maximum nesting depth of arrays and objects,
 * skipping strings (with escapes). Linear, no allocation, never reads past
 * len. Returns the depth, or stops early and returns max_depth + 1 as soon
 * as the depth exceeds max_depth.
 */
size_t guard_json_depth(const char *text, size_t len, size_t max_depth);

/*
 * Parses a request body as JSON: depth first (guard_json_depth), then
 * jansson (duplicate keys rejected). *out: a new reference. GENAI_ETOO_LARGE
 * when too deep, GENAI_ECORRUPT when malformed, with the position in err.
 */
int guard_json_parse(const char *text, size_t len, size_t max_depth, json_t **out,
                     genai_error *err);

#endif
