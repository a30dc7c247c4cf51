/*
 * logring.h - the daemon's recent log lines, kept in memory for GET
 * /api/logs and `genai logs`.
 *
 * http_logring_install() replaces the log sink (core/log.h) with one that
 * appends every line to a bounded ring (oldest dropped first) and still
 * writes the lines at the user's level to stderr in the default format. To
 * make the ring useful it lowers the logging threshold to "info"; stderr keeps
 * the level chosen before (GENAI_LOG_LEVEL, default "warn"). The ring is
 * guarded by a mutex: any thread may log and read.
 */
#ifndef GENAI_HTTP_LOGRING_H
#define GENAI_HTTP_LOGRING_H

#include <jansson.h>
#include <stddef.h>

/* Most lines kept. */
#define HTTP_LOGRING_LINES 1000

/* Installs the ring sink (idempotent). Call at start-up, before threads log. */
void http_logring_install(void);

/* Restores the default sink and frees the ring. For tests; accepts being
 * called without an install. */
void http_logring_uninstall(void);

/* True once installed. */
int http_logring_installed(void);

/*
 * The last max lines (all when max is 0 or larger than the ring), oldest
 * first: a new JSON array of {"time_ms","level","module","message"} owned by
 * the caller, or NULL when out of memory.
 */
json_t *http_logring_json(size_t max);

#endif
