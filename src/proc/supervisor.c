/*
 * supervisor.c - the process supervisor state machine (see supervisor.h).
 *
 * The happy path, and where the others branch off:
 *
 *   STOPPED -> STARTED -> (LOADING) -> READY -> STOPPING -> STOPPED
 *                 |           |          |          |
 *                 +-----------+----------+----------+--> CRASHED -> BACKOFF -> STARTED
 *                   (exit not asked for, or a stop         |
 *                    the supervisor decided)               +-> FAILED
 *
 * Transitions, and the function that performs each:
 *   from                        event                       to              function
 *   STOPPED, FAILED             sup_start                   STARTED         do_spawn
 *   STOPPED, FAILED, BACKOFF    spawn fails                 FAILED          do_spawn
 *   STARTED                     probe: not yet (503, 401)   LOADING         on_probe
 *   STARTED, LOADING            probe: ready                READY           on_probe
 *   STARTED (no check)          spawned, not oneshot        READY           do_spawn
 *   STARTED, LOADING, READY     sup_stop                    STOPPING        begin_stop
 *   STARTED, LOADING            ready deadline              STOPPING        on_deadline
 *   READY                       N probes failed (watchdog)  STOPPING        on_probe
 *   STOPPING                    reaped, asked by owner      STOPPED         finish_child
 *   STOPPING                    reaped, watchdog/deadline   CRASHED         handle_death
 *   STARTED, LOADING, READY     reaped, not asked           CRASHED         handle_death
 *   STARTED (oneshot)           reaped, exit 0              STOPPED         finish_child
 *   CRASHED                     deaths <= restart_max       BACKOFF         handle_death
 *   CRASHED                     otherwise                   FAILED          handle_death
 *   BACKOFF                     backoff timer               STARTED         on_backoff
 *   BACKOFF, FAILED             sup_stop                    STOPPED         sup_stop
 *   STOPPED, BACKOFF, FAILED    sup_set_argv (no change)    (same)          sup_set_argv
 *
 * A spawn failure is reported with PROC_CAUSE_EXEC. Stop escalation inside
 * STOPPING: SIGTERM, stop_grace_ms, SIGTERM, stop_term2_ms, SIGKILL
 * (begin_stop, on_stop_timer).
 *
 * Invariants:
 *  1. At most one child per sup. s->pid != 0 from a successful spawn until the
 *     child is finished; s->reaped says whether waitpid has collected it.
 *     No signal is sent once s->reaped is set (sup_signal checks), so a
 *     reused pid is never hit. Only this thread calls waitpid(s->pid).
 *  2. A child is finished (finish_child) only when it is reaped AND both of
 *     its pipes have been closed (EOF, or forced shut 500 ms after the reap),
 *     so the stderr tail in the report is complete and nothing of the child
 *     is left open when the owner hears about its end.
 *  3. The exit watch (a pidfd under uv_poll, or SIGCHLD where pidfd_open is
 *     missing) is armed from spawn until the reap, in every state, so a death
 *     while loading is seen at once, not at the next probe.
 *  4. At most one probe is in flight; it is cancelled whenever the state
 *     leaves STARTED, LOADING or READY. Probes never run while STOPPING.
 *  5. Every stop ends reaped: SIGTERM, after stop_grace_ms a second SIGTERM,
 *     after stop_term2_ms SIGKILL (begin_stop, on_stop_timer).
 *  6. Restarts are at least 1000 ms after the previous start, and after more
 *     than restart_max deaths within restart_window_ms the state is FAILED.
 *  7. Event callbacks may call sup_start and sup_stop (never sup_free); code
 *     that emits an event re-reads the state afterwards.
 */
#include "proc/supervisor.h"

#include "core/alloc.h"
#include "core/log.h"
#include "proc/lines.h"
#include "proc/logfile.h"
#include "proc/spawn.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    SUP_MIN_BACKOFF_MS = 1000, /* DESIGN.md: restarts at least 1 s apart */
    SUP_PIPE_LINGER_MS = 500,  /* after the reap, wait this long for pipe EOF */
    SUP_KILL_WAIT_MS = 5000,   /* after SIGKILL, complain at this interval */
    SUP_TAIL_LINES = 20,       /* stderr lines carried by crash events */
    SUP_READ_BUF = 65536,
};

struct sup {
    uv_loop_t *uv;
    char *name;
    char **argv;
    char **envp;
    sup_opts o; /* a copy; its pointers refer to the copies above */
    sup_state state;

    /* the child (invariant 1) */
    pid_t pid;
    int reaped;
    int status;
    int pidfd;
    uv_pipe_t pipes[2]; /* [0] stdout, [1] stderr */
    int pipe_open[2];
    uv_poll_t exit_poll;
    int exit_poll_open;
    int child_handles; /* pipes and exit_poll not yet through their close callback */

    /* readiness */
    int probe_inflight;
    int probe_delay_ms;
    int watchdog_misses;

    /* stopping */
    int stop_step;     /* signals sent: 1 SIGTERM, 2 second SIGTERM, 3 SIGKILL */
    int stop_internal; /* the supervisor stopped it to restart it */
    proc_cause stop_cause;
    char stop_reason[256];
    sup_stop_how stop_how;

    /* restarts */
    uint64_t window_start;
    int deaths;
    int consecutive;
    uint64_t last_start;

    /* output */
    proc_lines lines[2];
    proc_ring ring[2];
    proc_logfile log;

    /* handles that live as long as the sup */
    uv_timer_t probe_timer;
    uv_timer_t deadline_timer;
    uv_timer_t stop_timer; /* escalation, pipe linger, backoff */
    uv_signal_t sigchld;
    int own_handles; /* open persistent handles, while freeing */
    int freeing;

    char read_buf[SUP_READ_BUF];
};

static void on_probe(void *arg, sup_probe_result result, const char *detail);
static void finish_child(sup *s);

/* ---- helpers ------------------------------------------------------------ */

static char **copy_strv(const char *const *v)
{
    size_t n = 0;
    while (v[n] != NULL)
        n++;
    char **c = mem_calloc(n + 1, sizeof(char *));
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        c[i] = mem_strdup(v[i]);
        if (c[i] == NULL) {
            for (size_t k = 0; k < i; k++)
                mem_free(c[k]);
            mem_free(c);
            return NULL;
        }
    }
    return c;
}

static void free_strv(char **v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; v[i] != NULL; i++)
        mem_free(v[i]);
    mem_free(v);
}

static void set_state(sup *s, sup_state st, const char *reason, proc_cause cause)
{
    sup_state prev = s->state;
    s->state = st;
    LOG_INFO("proc", "%s: %s -> %s (%s)", s->name, sup_state_name(prev), sup_state_name(st),
             reason);
    if (s->o.on_event == NULL || s->freeing)
        return;
    sbuf tail = SBUF_INIT;
    sup_event ev = {.state = st, .prev = prev, .reason = reason, .pid = s->pid};
    if (s->reaped && (st == SUP_CRASHED || st == SUP_STOPPED || st == SUP_FAILED)) {
        ev.reaped = 1;
        proc_decode_status(s->status, &ev.exited, &ev.exit_code, &ev.term_signal);
        ev.stop_how = s->stop_how;
        proc_ring_join(&s->ring[1], SUP_TAIL_LINES, &tail);
    }
    ev.cause = cause;
    ev.stderr_tail = sbuf_str(&tail);
    ev.restarts = s->deaths;
    s->o.on_event(s->o.arg, s, &ev);
    sbuf_free(&tail);
}

/* Invariant 1: never signal a reaped pid. */
static void sup_signal(sup *s, int sig)
{
    if (s->pid <= 0 || s->reaped)
        return;
    if (kill(s->pid, sig) != 0 && errno != ESRCH)
        LOG_WARN("proc", "%s: kill(%ld, %d): %s", s->name, (long)s->pid, sig, strerror(errno));
}

static void cancel_probe(sup *s)
{
    uv_timer_stop(&s->probe_timer);
    if (s->probe_inflight && s->o.check != NULL)
        s->o.check->cancel(s->o.check);
    s->probe_inflight = 0;
}

/* ---- output ------------------------------------------------------------- */

typedef struct line_ctx {
    sup *s;
    int stream;
} line_ctx;

static void on_line(void *arg, const char *line, size_t len)
{
    line_ctx *lc = arg;
    sup *s = lc->s;
    proc_ring_push(&s->ring[lc->stream - 1], line, len);
    proc_logfile_write(&s->log, lc->stream == 1 ? "out: " : "err: ", line, len);
    if (s->o.on_line != NULL && !s->freeing)
        s->o.on_line(s->o.arg, s, lc->stream, line, len);
}

static void maybe_free(sup *s)
{
    if (s->own_handles == 0 && s->child_handles == 0)
        mem_free(s);
}

static void on_child_handle_closed(uv_handle_t *h)
{
    sup *s = h->data;
    s->child_handles--;
    if (s->freeing)
        maybe_free(s);
    else
        finish_child(s);
}

static void close_pipe(sup *s, int i)
{
    if (!s->pipe_open[i])
        return;
    s->pipe_open[i] = 0;
    line_ctx lc = {s, i + 1};
    proc_lines_flush(&s->lines[i], on_line, &lc);
    uv_close((uv_handle_t *)&s->pipes[i], on_child_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    sup *s = h->data;
    *buf = uv_buf_init(s->read_buf, sizeof(s->read_buf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    sup *s = st->data;
    int i = st == (uv_stream_t *)&s->pipes[0] ? 0 : 1;
    if (nread > 0) {
        line_ctx lc = {s, i + 1};
        proc_lines_feed(&s->lines[i], buf->base, (size_t)nread, on_line, &lc);
    } else if (nread < 0) {
        close_pipe(s, i); /* UV_EOF, or a read error that ends the stream alike */
    }
}

/* ---- exit ---------------------------------------------------------------- */

static void close_exit_watch(sup *s)
{
    if (s->exit_poll_open) {
        s->exit_poll_open = 0;
        uv_close((uv_handle_t *)&s->exit_poll, on_child_handle_closed);
    }
    uv_signal_stop(&s->sigchld);
}

static void on_linger(uv_timer_t *t)
{
    sup *s = t->data;
    LOG_DEBUG("proc", "%s: closing pipes still open %d ms after exit", s->name, SUP_PIPE_LINGER_MS);
    close_pipe(s, 0);
    close_pipe(s, 1);
}

static void try_reap(sup *s)
{
    if (s->pid <= 0 || s->reaped)
        return;
    int status;
    pid_t w;
    do {
        w = waitpid(s->pid, &status, WNOHANG);
    } while (w < 0 && errno == EINTR);
    if (w == 0)
        return;
    if (w < 0) {
        /* ECHILD: someone reaped it behind our back (SIGCHLD set to SIG_IGN by
         * the embedding app). Treat as an exit with unknown status. */
        LOG_WARN("proc", "%s: waitpid(%ld): %s", s->name, (long)s->pid, strerror(errno));
        status = 0xff << 8;
    }
    s->reaped = 1;
    s->status = status;
    if (s->state == SUP_STOPPING)
        s->stop_how = s->stop_step <= 1   ? SUP_STOP_CLEAN
                      : s->stop_step == 2 ? SUP_STOP_SECOND_TERM
                                          : SUP_STOP_KILLED;
    cancel_probe(s);
    uv_timer_stop(&s->deadline_timer);
    uv_timer_stop(&s->stop_timer);
    close_exit_watch(s);
    if (s->pipe_open[0] || s->pipe_open[1])
        uv_timer_start(&s->stop_timer, on_linger, SUP_PIPE_LINGER_MS, 0);
    finish_child(s);
}

static void on_exit_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    try_reap(h->data);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    try_reap(h->data);
}

static int open_pidfd(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* Invariant 3: watch for the exit from spawn to reap. */
static void arm_exit_watch(sup *s)
{
    s->pidfd = open_pidfd(s->pid);
    if (s->pidfd >= 0 && uv_poll_init(s->uv, &s->exit_poll, s->pidfd) == 0) {
        s->exit_poll.data = s;
        s->exit_poll_open = 1;
        s->child_handles++;
        uv_poll_start(&s->exit_poll, UV_READABLE, on_exit_poll);
        return;
    }
    if (s->pidfd >= 0) {
        close(s->pidfd);
        s->pidfd = -1;
    }
    /* No pidfd (kernel < 5.3, or not Linux): SIGCHLD, then one check for an
     * exit that happened before the watcher was armed. */
    uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
    try_reap(s);
}

/* ---- spawn and readiness ------------------------------------------------ */

static void on_probe_timer(uv_timer_t *t)
{
    sup *s = t->data;
    if (s->state != SUP_STARTED && s->state != SUP_LOADING && s->state != SUP_READY)
        return;
    int rc = s->o.check->probe(s->o.check, s->o.probe_timeout_ms, on_probe, s);
    if (rc < 0) {
        LOG_WARN("proc", "%s: readiness probe not started: %s", s->name, genai_strerror(rc));
        uv_timer_start(&s->probe_timer, on_probe_timer, (uint64_t)s->o.probe_max_ms, 0);
        return;
    }
    s->probe_inflight = 1;
}

static void begin_stop(sup *s, int internal, proc_cause cause, const char *reason);

static void on_probe(void *arg, sup_probe_result result, const char *detail)
{
    sup *s = arg;
    s->probe_inflight = 0;
    if (s->state == SUP_READY) {
        if (result == SUP_PROBE_READY) {
            s->watchdog_misses = 0;
        } else if (++s->watchdog_misses >= s->o.watchdog_failures) {
            char why[320];
            snprintf(why, sizeof(why), "health check failed %d times while ready (%s)",
                     s->watchdog_misses, detail);
            begin_stop(s, 1, PROC_CAUSE_HANG, why);
            return;
        }
        uv_timer_start(&s->probe_timer, on_probe_timer, (uint64_t)s->o.watchdog_interval_ms, 0);
        return;
    }
    if (s->state != SUP_STARTED && s->state != SUP_LOADING)
        return;
    if (result == SUP_PROBE_READY) {
        uv_timer_stop(&s->deadline_timer);
        s->consecutive = 0; /* a healthy start resets the backoff */
        s->watchdog_misses = 0;
        set_state(s, SUP_READY, detail, PROC_CAUSE_NONE);
        if (s->state == SUP_READY && s->o.watchdog_interval_ms > 0)
            uv_timer_start(&s->probe_timer, on_probe_timer, (uint64_t)s->o.watchdog_interval_ms, 0);
        return;
    }
    if (result == SUP_PROBE_NOT_READY && s->state == SUP_STARTED) {
        set_state(s, SUP_LOADING, detail, PROC_CAUSE_NONE);
        if (s->state != SUP_LOADING)
            return;
    }
    s->probe_delay_ms *= 2;
    if (s->probe_delay_ms > s->o.probe_max_ms)
        s->probe_delay_ms = s->o.probe_max_ms;
    uv_timer_start(&s->probe_timer, on_probe_timer, (uint64_t)s->probe_delay_ms, 0);
}

static void on_deadline(uv_timer_t *t)
{
    sup *s = t->data;
    if (s->state != SUP_STARTED && s->state != SUP_LOADING)
        return;
    char why[128];
    snprintf(why, sizeof(why), "not ready within %d ms", s->o.ready_timeout_ms);
    begin_stop(s, 1, PROC_CAUSE_NOT_READY, why);
}

static int do_spawn(sup *s, const char *reason, genai_error *err)
{
    for (int i = 0; i < 2; i++) {
        proc_ring_clear(&s->ring[i]);
        s->lines[i].len = 0;
        s->lines[i].after_cr = 0;
        s->lines[i].after_el = 0;
    }
    proc_spawn_opts so = {.argv = (const char *const *)s->argv,
                          .envp = (const char *const *)s->envp,
                          .new_pgroup = 1};
    proc_child child;
    genai_error local;
    genai_error *e = err != NULL ? err : &local;
    int rc = proc_spawn(&so, &child, e);
    if (rc < 0) {
        s->pid = 0;
        s->reaped = 0;
        set_state(s, SUP_FAILED, e->detail, PROC_CAUSE_EXEC);
        return rc;
    }
    s->pid = child.pid;
    s->reaped = 0;
    s->status = 0;
    s->stop_step = 0;
    s->stop_internal = 0;
    s->stop_how = SUP_STOP_NONE;
    s->last_start = uv_now(s->uv);
    int fds[2] = {child.out_fd, child.err_fd};
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(s->uv, &s->pipes[i], 0);
        s->pipes[i].data = s;
        s->child_handles++;
        s->pipe_open[i] = 1;
        if (uv_pipe_open(&s->pipes[i], fds[i]) != 0 ||
            uv_read_start((uv_stream_t *)&s->pipes[i], on_alloc, on_read) != 0) {
            /* Cannot happen with a fresh pipe fd; treat it as EOF so the
             * child is still watched and reaped. */
            LOG_ERROR("proc", "%s: cannot watch the child's output", s->name);
            close_pipe(s, i);
        }
    }
    set_state(s, SUP_STARTED, reason, PROC_CAUSE_NONE);
    if (s->state != SUP_STARTED)
        return 0; /* the owner stopped it from its callback */
    arm_exit_watch(s);
    if (s->reaped || s->state != SUP_STARTED)
        return 0;
    if (s->o.check != NULL) {
        s->probe_delay_ms = s->o.probe_min_ms;
        uv_timer_start(&s->probe_timer, on_probe_timer, (uint64_t)s->probe_delay_ms, 0);
        if (s->o.ready_timeout_ms > 0)
            uv_timer_start(&s->deadline_timer, on_deadline, (uint64_t)s->o.ready_timeout_ms, 0);
    } else if (!s->o.oneshot) {
        set_state(s, SUP_READY, "no readiness check", PROC_CAUSE_NONE);
    }
    return 0;
}

static void on_backoff(uv_timer_t *t)
{
    sup *s = t->data;
    if (s->state != SUP_BACKOFF)
        return;
    char why[64];
    snprintf(why, sizeof(why), "restart after %d death(s)", s->deaths);
    do_spawn(s, why, NULL);
}

/* ---- stopping ----------------------------------------------------------- */

static void on_stop_timer(uv_timer_t *t)
{
    sup *s = t->data;
    if (s->state != SUP_STOPPING || s->reaped)
        return;
    if (s->stop_step == 1) {
        LOG_INFO("proc", "%s: still running %d ms after SIGTERM; sending it again", s->name,
                 s->o.stop_grace_ms);
        s->stop_step = 2;
        sup_signal(s, SIGTERM);
        uv_timer_start(&s->stop_timer, on_stop_timer, (uint64_t)s->o.stop_term2_ms, 0);
    } else if (s->stop_step == 2) {
        LOG_WARN("proc", "%s: ignored two SIGTERMs; sending SIGKILL", s->name);
        s->stop_step = 3;
        sup_signal(s, SIGKILL);
        uv_timer_start(&s->stop_timer, on_stop_timer, SUP_KILL_WAIT_MS, 0);
    } else {
        /* Uninterruptible sleep (a GPU driver call, a hung NFS read): nothing
         * more can be done than to keep waiting for the exit watch. */
        LOG_ERROR("proc", "%s: pid %ld not dead %d ms after SIGKILL", s->name, (long)s->pid,
                  SUP_KILL_WAIT_MS);
        uv_timer_start(&s->stop_timer, on_stop_timer, SUP_KILL_WAIT_MS, 0);
    }
}

/* Invariant 5. internal: the supervisor's own decision (watchdog, deadline),
 * which ends in CRASHED with 'cause' instead of STOPPED. */
static void begin_stop(sup *s, int internal, proc_cause cause, const char *reason)
{
    cancel_probe(s);
    uv_timer_stop(&s->deadline_timer);
    s->stop_internal = internal;
    s->stop_cause = cause;
    snprintf(s->stop_reason, sizeof(s->stop_reason), "%s", reason);
    if (s->reaped) {
        s->stop_how = SUP_STOP_ALREADY_DEAD; /* only the pipes were left */
    } else {
        s->stop_step = 1;
        sup_signal(s, SIGTERM);
        uv_timer_start(&s->stop_timer, on_stop_timer, (uint64_t)s->o.stop_grace_ms, 0);
    }
    set_state(s, SUP_STOPPING, reason, PROC_CAUSE_NONE);
}

/* ---- deaths and restarts ------------------------------------------------ */

static void handle_death(sup *s, proc_cause cause, const char *reason)
{
    uint64_t now = uv_now(s->uv);
    if (s->deaths == 0 || now - s->window_start > (uint64_t)s->o.restart_window_ms) {
        s->window_start = now;
        s->deaths = 0;
    }
    s->deaths++;
    s->consecutive++;
    set_state(s, SUP_CRASHED, reason, cause);
    if (s->state != SUP_CRASHED)
        return; /* the owner decided from its callback */
    s->pid = 0;

    char why[512];
    if (s->o.oneshot || s->deaths > s->o.restart_max) {
        if (s->o.oneshot || s->o.restart_max == 0)
            snprintf(why, sizeof(why), "%s: %s", proc_cause_text(cause), reason);
        else
            snprintf(why, sizeof(why), "%d deaths within %d ms; last: %s: %s", s->deaths,
                     s->o.restart_window_ms, proc_cause_text(cause), reason);
        set_state(s, SUP_FAILED, why, cause);
        return;
    }
    uint64_t delay = (uint64_t)s->o.backoff_ms;
    for (int k = 1; k < s->consecutive && delay < (uint64_t)s->o.backoff_max_ms; k++)
        delay *= 2;
    if (delay > (uint64_t)s->o.backoff_max_ms)
        delay = (uint64_t)s->o.backoff_max_ms;
    if (s->last_start + SUP_MIN_BACKOFF_MS > now + delay) /* invariant 6 */
        delay = s->last_start + SUP_MIN_BACKOFF_MS - now;
    snprintf(why, sizeof(why), "restarting in %llu ms (death %d of %d allowed)",
             (unsigned long long)delay, s->deaths, s->o.restart_max);
    set_state(s, SUP_BACKOFF, why, cause);
    if (s->state == SUP_BACKOFF)
        uv_timer_start(&s->stop_timer, on_backoff, delay, 0);
}

static void describe_exit(const sup *s, char *buf, size_t n)
{
    int exited, code, sig;
    proc_decode_status(s->status, &exited, &code, &sig);
    if (exited)
        snprintf(buf, n, "pid %ld exited with code %d", (long)s->pid, code);
    else
        snprintf(buf, n, "pid %ld killed by signal %d (%s)", (long)s->pid, sig, strsignal(sig));
}

/* Invariant 2: runs when the child is reaped and its pipes are closed. */
static void finish_child(sup *s)
{
    if (s->pid <= 0 || !s->reaped || s->child_handles > 0)
        return;
    uv_timer_stop(&s->stop_timer); /* the pipe linger */
    if (s->pidfd >= 0) {
        close(s->pidfd);
        s->pidfd = -1;
    }
    char what[160], why[512];
    describe_exit(s, what, sizeof(what));
    if (s->state == SUP_STOPPING && !s->stop_internal) {
        snprintf(why, sizeof(why), "stopped: %s (%s)", what, sup_stop_how_name(s->stop_how));
        set_state(s, SUP_STOPPED, why, PROC_CAUSE_NONE);
        if (s->state == SUP_STOPPED)
            s->pid = 0;
        return;
    }
    if (s->state == SUP_STOPPING) {
        snprintf(why, sizeof(why), "%s; %s", s->stop_reason, what);
        handle_death(s, s->stop_cause, why);
        return;
    }
    int exited, code, sig;
    proc_decode_status(s->status, &exited, &code, &sig);
    if (s->o.oneshot && exited && code == 0) {
        set_state(s, SUP_STOPPED, what, PROC_CAUSE_NONE);
        if (s->state == SUP_STOPPED)
            s->pid = 0;
        return;
    }
    sbuf tail = SBUF_INIT;
    proc_ring_join(&s->ring[1], SUP_TAIL_LINES, &tail);
    proc_cause cause = proc_classify(s->o.patterns, sbuf_str(&tail), tail.len);
    sbuf_free(&tail);
    snprintf(why, sizeof(why), "%s while %s", what, sup_state_name(s->state));
    handle_death(s, cause, why);
}

/* ---- public ------------------------------------------------------------- */

int sup_new(uv_loop_t *uv, const sup_opts *opts, sup **out, genai_error *err)
{
    if (uv == NULL || opts == NULL || opts->name == NULL || opts->argv == NULL ||
        opts->argv[0] == NULL)
        return err_set(err, GENAI_EBAD_ARG, "sup_new: name and argv are required");
    sup *s = mem_calloc(1, sizeof(*s));
    if (s == NULL)
        return err_set(err, -ENOMEM, "allocating a supervisor");
    s->uv = uv;
    s->pidfd = -1;
    s->log.fd = -1;
    s->o = *opts;
    sup_opts *o = &s->o;
    if (o->ring_lines == 0)
        o->ring_lines = 64;
    if (o->max_line == 0)
        o->max_line = 16 * 1024;
    if (o->probe_timeout_ms <= 0)
        o->probe_timeout_ms = 1000;
    if (o->probe_min_ms <= 0)
        o->probe_min_ms = 50;
    if (o->probe_max_ms < o->probe_min_ms)
        o->probe_max_ms = o->probe_min_ms > 500 ? o->probe_min_ms : 500;
    if (o->watchdog_failures <= 0)
        o->watchdog_failures = 3;
    if (o->stop_grace_ms <= 0)
        o->stop_grace_ms = 5000;
    if (o->stop_term2_ms <= 0)
        o->stop_term2_ms = 2000;
    if (o->restart_window_ms <= 0)
        o->restart_window_ms = 60000;
    if (o->backoff_ms < SUP_MIN_BACKOFF_MS)
        o->backoff_ms = SUP_MIN_BACKOFF_MS;
    if (o->backoff_max_ms < o->backoff_ms)
        o->backoff_max_ms = o->backoff_ms > 30000 ? o->backoff_ms : 30000;

    int rc = -ENOMEM;
    s->name = mem_strdup(opts->name);
    s->argv = copy_strv(opts->argv);
    s->envp = opts->envp != NULL ? copy_strv(opts->envp) : NULL;
    if (s->name == NULL || s->argv == NULL || (opts->envp != NULL && s->envp == NULL))
        goto fail;
    o->name = s->name;
    o->argv = (const char *const *)s->argv;
    o->envp = (const char *const *)s->envp;
    o->log_dir = NULL; /* used only here */
    for (int i = 0; i < 2; i++) {
        if (proc_lines_init(&s->lines[i], o->max_line) < 0 ||
            proc_ring_init(&s->ring[i], o->ring_lines) < 0)
            goto fail;
        s->lines[i].eager_el = o->eager_erase_line;
    }
    if (opts->log_dir != NULL) {
        rc = proc_logfile_open(&s->log, opts->log_dir, s->name, o->log_max_bytes, o->log_keep, err);
        if (rc < 0)
            goto fail_quiet;
    }
    uv_timer_init(uv, &s->probe_timer);
    uv_timer_init(uv, &s->deadline_timer);
    uv_timer_init(uv, &s->stop_timer);
    uv_signal_init(uv, &s->sigchld);
    s->probe_timer.data = s->deadline_timer.data = s->stop_timer.data = s;
    s->sigchld.data = s;
    *out = s;
    return 0;

fail:
    err_set(err, rc, "allocating supervisor '%s'", opts->name);
fail_quiet:
    for (int i = 0; i < 2; i++) {
        proc_lines_free(&s->lines[i]);
        proc_ring_free(&s->ring[i]);
    }
    mem_free(s->name);
    free_strv(s->argv);
    free_strv(s->envp);
    mem_free(s);
    return rc;
}

int sup_start(sup *s, genai_error *err)
{
    if (s->state != SUP_STOPPED && s->state != SUP_FAILED)
        return err_set(err, GENAI_EBUSY, "%s is %s", s->name, sup_state_name(s->state));
    /* Called from outside a libuv callback, the loop's cached time may be
     * stale; timers armed from it would fire early. */
    uv_update_time(s->uv);
    s->deaths = 0;
    s->consecutive = 0;
    return do_spawn(s, "start requested", err);
}

int sup_set_argv(sup *s, const char *const *argv, genai_error *err)
{
    if (argv == NULL || argv[0] == NULL)
        return err_set(err, GENAI_EBAD_ARG, "%s: empty argv", s->name);
    if (s->state != SUP_STOPPED && s->state != SUP_BACKOFF && s->state != SUP_FAILED)
        return err_set(err, GENAI_EBUSY, "%s is %s", s->name, sup_state_name(s->state));
    char **copy = copy_strv(argv);
    if (copy == NULL)
        return err_set(err, -ENOMEM, "copying the argv of %s", s->name);
    free_strv(s->argv);
    s->argv = copy;
    s->o.argv = (const char *const *)copy;
    return 0;
}

void sup_stop(sup *s)
{
    uv_update_time(s->uv); /* as in sup_start: timers measure from now */
    switch (s->state) {
    case SUP_STOPPED:
    case SUP_STOPPING:
        return;
    case SUP_BACKOFF:
    case SUP_FAILED:
    case SUP_CRASHED:
        uv_timer_stop(&s->stop_timer);
        s->pid = 0;
        set_state(s, SUP_STOPPED, "stop requested", PROC_CAUSE_NONE);
        return;
    case SUP_STARTED:
    case SUP_LOADING:
    case SUP_READY:
        begin_stop(s, 0, PROC_CAUSE_NONE, "stop requested");
        return;
    }
}

static void on_own_handle_closed(uv_handle_t *h)
{
    sup *s = h->data;
    s->own_handles--;
    maybe_free(s);
}

void sup_free(sup *s)
{
    if (s == NULL)
        return;
    s->freeing = 1;
    cancel_probe(s);
    if (s->pid > 0 && !s->reaped) {
        sup_signal(s, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        s->reaped = 1;
    }
    /* Handles already closing count down through on_child_handle_closed,
     * which sees 'freeing' and frees instead of finishing the child. */
    for (int i = 0; i < 2; i++) {
        if (s->pipe_open[i]) {
            s->pipe_open[i] = 0;
            uv_close((uv_handle_t *)&s->pipes[i], on_child_handle_closed);
        }
        proc_lines_free(&s->lines[i]);
        proc_ring_free(&s->ring[i]);
    }
    if (s->exit_poll_open) {
        s->exit_poll_open = 0;
        uv_close((uv_handle_t *)&s->exit_poll, on_child_handle_closed);
    }
    if (s->pidfd >= 0) /* after uv_close took it out of epoll */
        close(s->pidfd);
    proc_logfile_close(&s->log);
    mem_free(s->name);
    free_strv(s->argv);
    free_strv(s->envp);
    s->name = NULL;
    s->own_handles = 4;
    uv_close((uv_handle_t *)&s->probe_timer, on_own_handle_closed);
    uv_close((uv_handle_t *)&s->deadline_timer, on_own_handle_closed);
    uv_close((uv_handle_t *)&s->stop_timer, on_own_handle_closed);
    uv_close((uv_handle_t *)&s->sigchld, on_own_handle_closed);
}

sup_state sup_get_state(const sup *s)
{
    return s->state;
}

pid_t sup_pid(const sup *s)
{
    return s->reaped ? 0 : s->pid;
}

void sup_tail(const sup *s, int stream, size_t max_lines, sbuf *out)
{
    if (stream == 1 || stream == 2)
        proc_ring_join(&s->ring[stream - 1], max_lines, out);
}

const char *sup_state_name(sup_state st)
{
    static const char *const names[] = {"stopped",  "started", "loading", "ready",
                                        "stopping", "crashed", "backoff", "failed"};
    if ((unsigned)st < sizeof(names) / sizeof(names[0]))
        return names[st];
    return "unknown";
}

const char *sup_stop_how_name(sup_stop_how how)
{
    switch (how) {
    case SUP_STOP_NONE:
        return "none";
    case SUP_STOP_CLEAN:
        return "clean exit after SIGTERM";
    case SUP_STOP_SECOND_TERM:
        return "exit after the second SIGTERM";
    case SUP_STOP_KILLED:
        return "needed SIGKILL";
    case SUP_STOP_ALREADY_DEAD:
        return "had already exited";
    }
    return "unknown";
}
