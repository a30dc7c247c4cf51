/*
 * notify.h - where an orchestrator event goes besides the owner's callback:
 * one log line, one event on the bus ("orch.<name>", core/events.h) and the
 * counters and timings of the metrics registry (core/metrics.h) that the
 * /metrics endpoint renders.
 *
 * Metric families (all prefixed genai_orch_): offloads_total,
 * reload_attempts_total, reloads_total, reload_failures_total,
 * llm_failures_total, drain_timeouts_total, reclaim_timeouts_total,
 * request_timeouts_total, images_total{result="ok"|"failed"}, and the
 * summaries (seconds) drain_seconds, stop_seconds, reclaim_seconds,
 * load_seconds, reload_seconds, image_seconds, queue_wait_seconds.
 *
 * Loop thread only. bus and m may be NULL.
 */
#ifndef GENAI_ORCH_NOTIFY_H
#define GENAI_ORCH_NOTIFY_H

#include "orch/orch.h"

/* Logs ev, publishes it on bus and updates m. */
void orch_notify(struct events *bus, struct metrics *m, const orch_event *ev);

/* Records how long a granted LLM request waited in the queue. */
void orch_notify_queue_wait(struct metrics *m, uint64_t waited_ms);

#endif
