/*
 * supervisor.h - one supervised child process on the loop thread.
 *
 * A sup owns at most one child at a time: it spawns it (proc_spawn: argv,
 * /dev/null stdin, close-on-exec fds, parent-death SIGKILL), splits its
 * stdout and stderr into lines (LF, CRLF, lone CR) for a per-line callback, a
 * ring of recent lines per stream and a rotating log file, observes readiness
 * with a pluggable check raced against exit, stops it with escalation
 * (SIGTERM, grace, SIGTERM, wait, SIGKILL, always reaped), classifies deaths
 * from the stderr tail, and restarts with backoff until a death tally says
 * "failed". Every state change reaches the owner as an event.
 *
 * Everything here runs on the loop thread that owns the uv_loop_t: create,
 * start, stop and free from the loop thread (other threads post to it with
 * loop_post / loop_call_wait). Callbacks run on the loop thread.
 * The state machine is described at the top of supervisor.c.
 */
#ifndef GENAI_PROC_SUPERVISOR_H
#define GENAI_PROC_SUPERVISOR_H

#include "core/error.h"
#include "core/sbuf.h"
#include "proc/classify.h"

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

typedef enum sup_state {
    SUP_STOPPED = 0, /* no child; initial state, and after a requested stop */
    SUP_STARTED,     /* spawned; no readiness answer yet */
    SUP_LOADING,     /* answering its check with "not yet" (e.g. HTTP 503) */
    SUP_READY,       /* the check passed */
    SUP_STOPPING,    /* signalled, waiting for exit */
    SUP_CRASHED,     /* died unasked (momentary: then BACKOFF or FAILED) */
    SUP_BACKOFF,     /* waiting before a restart */
    SUP_FAILED,      /* gave up; sup_start tries again */
} sup_state;

/* How a stop ended (a requested one, or one the supervisor decided). */
typedef enum sup_stop_how {
    SUP_STOP_NONE = 0,
    SUP_STOP_CLEAN,        /* exited after the first SIGTERM */
    SUP_STOP_SECOND_TERM,  /* exited after the second SIGTERM */
    SUP_STOP_KILLED,       /* needed SIGKILL */
    SUP_STOP_ALREADY_DEAD, /* was exiting on its own */
} sup_stop_how;

/* ---- readiness checks -------------------------------------------------- */

typedef enum sup_probe_result {
    SUP_PROBE_NO_ANSWER = 0, /* nothing answered (connection refused, timeout) */
    SUP_PROBE_NOT_READY,     /* it answered "not yet" (503 while loading) */
    SUP_PROBE_READY,
} sup_probe_result;

typedef void (*sup_probe_cb)(void *arg, sup_probe_result result, const char *detail);

/*
 * A readiness check. probe() starts one attempt and calls cb exactly once,
 * later (never from inside probe), on the loop thread, unless cancel() runs
 * first; it returns 0 or a negative code when it could not start. At most one
 * probe is in flight per check. destroy() frees the check (not while a probe
 * is in flight). The supervisor does not own the check unless said so.
 */
typedef struct sup_check sup_check;
struct sup_check {
    int (*probe)(sup_check *self, int timeout_ms, sup_probe_cb cb, void *arg);
    void (*cancel)(sup_check *self);
    void (*destroy)(sup_check *self);
};

/* ---- events ------------------------------------------------------------ */

typedef struct sup sup;

typedef struct sup_event {
    sup_state state;
    sup_state prev;
    const char *reason; /* what caused the transition, human text */
    pid_t pid;          /* the child concerned, 0 when none */
    /* set when the child has just been reaped (CRASHED, STOPPED, FAILED) */
    int reaped;
    int exited; /* 1: exit_code valid; 0: term_signal valid */
    int exit_code;
    int term_signal;
    sup_stop_how stop_how;
    proc_cause cause;        /* for CRASHED and FAILED */
    const char *stderr_tail; /* last stderr lines, "\n"-separated; "" if none */
    int restarts;            /* deaths counted in the current window */
} sup_event;

typedef void (*sup_event_fn)(void *arg, sup *s, const sup_event *ev);
typedef void (*sup_line_fn)(void *arg, sup *s, int stream /* 1 or 2 */, const char *line,
                            size_t len);

typedef struct sup_opts {
    const char *name;               /* for logs and the log file name; required */
    const char *const *argv;        /* copied */
    const char *const *envp;        /* NULL: inherit; copied */
    const char *log_dir;            /* NULL: no log file */
    size_t log_max_bytes;           /* 0: 8 MiB */
    int log_keep;                   /* old log files kept, 0..2 */
    size_t ring_lines;              /* per stream; 0: 64 */
    size_t max_line;                /* 0: 16 KiB */
    sup_check *check;               /* NULL: ready as soon as spawned (oneshot jobs:
                                       stays STARTED) */
    int ready_timeout_ms;           /* 0: no deadline */
    int probe_timeout_ms;           /* per probe; 0: 1000 */
    int probe_min_ms, probe_max_ms; /* backoff between probes; 0: 50 / 500 */
    int watchdog_interval_ms;       /* while ready; 0: no watchdog */
    int watchdog_failures;          /* consecutive failed probes -> restart */
    int stop_grace_ms;              /* after the first SIGTERM; 0: 5000 */
    int stop_term2_ms;              /* after the second SIGTERM; 0: 2000 */
    int oneshot;                    /* exit 0 is success (sd-cli); never restarted */
    int eager_erase_line;           /* a line ending in ESC[K is complete at once
                                       (progress bars, see proc/lines.h) */
    int restart_max;                /* restarts allowed per window; one more death
                                       means FAILED; 0: never restart */
    int restart_window_ms;          /* 0: 60000 */
    int backoff_ms;                 /* first restart delay, at least 1000 */
    int backoff_max_ms;             /* 0: 30000 */
    const proc_pattern *patterns;   /* crash classification table; NULL: unknown */
    sup_event_fn on_event;
    sup_line_fn on_line;
    void *arg;
} sup_opts;

/* Creates a supervisor (no child yet, state STOPPED). Free with sup_free. */
int sup_new(uv_loop_t *uv, const sup_opts *opts, sup **out, genai_error *err);

/*
 * Starts the child (from STOPPED or FAILED; the death tally restarts).
 * Returns 0 once spawned, or the spawn error (state FAILED, cause
 * PROC_CAUSE_EXEC, an event is emitted too). GENAI_EBUSY in other states.
 */
int sup_start(sup *s, genai_error *err);

/*
 * Replaces the argv of the next spawn (a restart after BACKOFF, or the next
 * sup_start), for example to move a child whose port was taken to another
 * port. Only while there is no child: STOPPED, BACKOFF or FAILED (event
 * callbacks for those states may call it); GENAI_EBUSY otherwise. The
 * strings are copied; on failure the old argv stays.
 */
int sup_set_argv(sup *s, const char *const *argv, genai_error *err);

/* Asks the child to stop (escalating as described above). From BACKOFF or
 * FAILED it just goes to STOPPED. No-op when already stopping or stopped. */
void sup_stop(sup *s);

/*
 * Frees the supervisor. A child still running is SIGKILLed and reaped first
 * (synchronously: SIGKILL cannot be ignored). Handles close asynchronously,
 * so the loop must run afterwards. No callbacks run after this. Accepts NULL.
 */
void sup_free(sup *s);

sup_state sup_get_state(const sup *s);
/* The current child's pid, 0 when there is none (never a reaped pid). */
pid_t sup_pid(const sup *s);
/* Appends the last max_lines lines (0: all kept) of stream 1 or 2 to out. */
void sup_tail(const sup *s, int stream, size_t max_lines, sbuf *out);

const char *sup_state_name(sup_state st);
const char *sup_stop_how_name(sup_stop_how how);

#endif
