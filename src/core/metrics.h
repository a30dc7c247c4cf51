/*
 * metrics.h - a small registry of counters, gauges and summaries, rendered in
 * the Prometheus text exposition format (version 0.0.4) for GET /metrics.
 *
 * A metric family is a name, a help line and a type; each distinct label set
 * is one series. Labels are passed preformatted ("route=\"/health\",status=\"200\"")
 * and must come from trusted constants (route patterns from the route table,
 * status numbers): never put a request path or a model name a client chose
 * into a label, or every client can grow the registry. Each family holds at
 * most METRICS_MAX_SERIES series; updates beyond that are dropped and counted
 * in genai_metrics_dropped_total.
 *
 * Threading: loop thread only, like all runtime state (DESIGN.md principle
 * 3). Other threads post to the loop to update.
 */
#ifndef GENAI_CORE_METRICS_H
#define GENAI_CORE_METRICS_H

#include "core/sbuf.h"

typedef struct metrics metrics;

#define METRICS_MAX_SERIES 512

/* Creates an empty registry; free with metrics_free. -ENOMEM. */
int metrics_new(metrics **out);
void metrics_free(metrics *m);

/*
 * Updates. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is a static or
 * long-lived string (copied on first use); labels may be NULL or "". A name
 * used with two types, a bad name and a negative counter increment are
 * refused with GENAI_EBAD_ARG. Return 0, -ENOMEM, GENAI_EBAD_ARG, or
 * GENAI_ETOO_LARGE when the family is full.
 */
int metrics_counter_add(metrics *m, const char *name, const char *help, const char *labels,
                        double v);
int metrics_gauge_set(metrics *m, const char *name, const char *help, const char *labels, double v);
int metrics_gauge_add(metrics *m, const char *name, const char *help, const char *labels, double v);
/* A summary without quantiles: NAME_sum and NAME_count (seconds for durations). */
int metrics_observe(metrics *m, const char *name, const char *help, const char *labels, double v);

/* Current value of a counter or gauge series (a summary's count), or 0 when
 * it does not exist. For tests and for modules that read their own gauges. */
double metrics_value(const metrics *m, const char *name, const char *labels);

/* Appends the whole registry, families in first-use order, to out. */
int metrics_render(const metrics *m, sbuf *out);

#endif
