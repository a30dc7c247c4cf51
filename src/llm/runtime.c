/*
 * runtime.c - the LLM runtime: plan, start, watch and stop one llama-server
 * (see runtime.h for the states and the order of the steps).
 *
 * The supervisor (proc/supervisor.h) owns the child; this file turns its
 * events into runtime states and adds what is specific to llama-server:
 *   - the plan (planner auto-configuration, then the one fit function on the
 *     best-tier demand: a footprint measured before beats the estimate);
 *   - the launch (driver argv and environment, key file, private port);
 *   - readiness beyond /health: GET /props, checked against the alias and
 *     model path asked for (contracts/llama-server.md §4, §10);
 *   - the learned footprint once READY (memory lines, RSS, GPU per process);
 *   - three crash decisions: port taken -> new port; bad argument or bad
 *     model file -> FAILED at once (a restart cannot fix them); anything
 *     else -> the supervisor's restart policy.
 *
 * Runtime state follows the supervisor's, except that the supervisor's READY
 * is the runtime's LOADING until /props has been checked, and that a
 * decision to fail (fail_pending) turns the STOPPED that follows into
 * FAILED.
 */
#include "llm/runtime.h"

#include "core/alloc.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/paths.h"
#include "gguf/profile.h"
#include "llm/crash.h"
#include "llm/discover.h"
#include "llm/isolate.h"
#include "llm/launch.h"
#include "llm/status.h"
#include "llm/version.h"
#include "plan/fit.h"
#include "proc/run.h"
#include "sys/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MOD "llm"

extern char **environ;

enum {
    RT_READY_TIMEOUT_MS = 600000, /* a 70B model from a cold disk loads for minutes */
    RT_RESTART_MAX = 3,
    RT_SSE_PING_S = 2,          /* short, so the stop grace can be short (§8) */
    RT_TERM2_MS = 2000,         /* §8 stop policy step 5 */
    RT_WATCHDOG_MS = 5000,      /* /health is served off the inference thread: cheap */
    RT_PROPS_TIMEOUT_MS = 5000, /* /props goes through the HTTP thread only */
    RT_PROPS_TRIES = 3,
    RT_PROPS_RETRY_MS = 200,
    RT_VERSION_TIMEOUT_MS = 5000,
    RT_TAIL_LINES_IN_ERROR = 8,
    RT_HEALTH_BODY_MAX = 64 * 1024,
};

/* The /health readiness check, reading the runtime's current port at each
 * probe (the port changes when a bind failure moves the child). */
typedef struct rt_check {
    sup_check base; /* first */
    llm_runtime *rt;
    http_req *inflight;
    sup_probe_cb cb;
    void *cb_arg;
} rt_check;

struct llm_runtime {
    uv_loop_t *uv;
    llm_rt_config cfg; /* deep copy: the strings and arrays below */
    char *model, *model_id, *server_path, *run_dir_cfg, *log_dir;
    char **extra_cfg;
    plan_footprints *fp;
    int own_fp;
    llm_rt_event_fn on_event;
    void *arg;

    http_client *http;
    sup *sup;
    rt_check check;
    proc_pattern patterns[32]; /* the driver's crash table, as the supervisor takes it */
    llm_rt_state state;
    int stop_requested;
    int fail_pending;
    genai_error error;

    /* the current start */
    char *server;
    uint32_t build;
    char run_dir[PATHS_MAX], home[PATHS_MAX], key_path[PATHS_MAX];
    char api_key[LLM_API_KEY_LEN + 1];
    uint16_t port;
    llm_launch launch; /* borrows the strings of this struct */
    char **extra;      /* extra_cfg plus -ts */
    char ts_arg[PLAN_MAX_GPUS * 16];
    char **envp;
    llm_rt_plan plan;
    int have_plan;
    char model_key[PLAN_KEY_MAX];
    char config_key[PLAN_KEY_MAX];

    /* after /health */
    http_req *props_req;
    uv_timer_t props_timer;
    int props_tries;

    llm_footprint memlog;
    plan_demand measured;
    int have_measured;
};

static atomic_uint rt_seq;

/* ---- small helpers ----------------------------------------------------- */

static char **strv_copy(const char *const *v, size_t extra_slots)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **c = mem_calloc(n + extra_slots + 1, sizeof(char *));
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        c[i] = mem_strdup(v[i]);
        if (c[i] == NULL) {
            llm_argv_free(c);
            return NULL;
        }
    }
    return c;
}

static const char *fmt_mib(char *buf, size_t n, uint64_t bytes)
{
    if (bytes >= PLAN_GIB)
        snprintf(buf, n, "%.2f GiB", (double)bytes / (double)PLAN_GIB);
    else
        snprintf(buf, n, "%.1f MiB", (double)bytes / (double)PLAN_MIB);
    return buf;
}

static int cause_code(proc_cause cause)
{
    switch (cause) {
    case PROC_CAUSE_OOM:
        return GENAI_ENO_FIT;
    case PROC_CAUSE_BAD_MODEL:
        return GENAI_ECORRUPT;
    case PROC_CAUSE_PORT:
        return -EADDRINUSE;
    case PROC_CAUSE_BAD_ARG:
        return GENAI_EBAD_ARG;
    case PROC_CAUSE_HANG:
        return GENAI_ETIMEOUT;
    case PROC_CAUSE_NOT_READY:
        return GENAI_ENOT_READY;
    default:
        return GENAI_ECHILD_EXITED;
    }
}

/* Converts llm_crash_signatures (the driver's table) to the supervisor's
 * pattern form. */
static void build_patterns(llm_runtime *rt)
{
    size_t max = sizeof(rt->patterns) / sizeof(rt->patterns[0]) - 1, k = 0;
    for (size_t i = 0; i < llm_crash_signatures_count && k < max; i++) {
        proc_cause c;
        switch (llm_crash_signatures[i].cause) {
        case LLM_CRASH_OUT_OF_MEMORY:
            c = PROC_CAUSE_OOM;
            break;
        case LLM_CRASH_BAD_MODEL:
            c = PROC_CAUSE_BAD_MODEL;
            break;
        case LLM_CRASH_PORT_IN_USE:
            c = PROC_CAUSE_PORT;
            break;
        case LLM_CRASH_BAD_ARGUMENT:
            c = PROC_CAUSE_BAD_ARG;
            break;
        default:
            continue;
        }
        rt->patterns[k].needle = llm_crash_signatures[i].needle;
        rt->patterns[k].cause = c;
        k++;
    }
    rt->patterns[k].needle = NULL;
    rt->patterns[k].cause = PROC_CAUSE_UNKNOWN;
}

static void emit(llm_runtime *rt, llm_rt_state st, const char *reason, const sup_event *sev,
                 int code)
{
    llm_rt_state prev = rt->state;
    rt->state = st;
    LOG_INFO(MOD, "%s: %s -> %s (%s)", rt->model_id, llm_rt_state_name(prev), llm_rt_state_name(st),
             reason);
    if (rt->on_event == NULL)
        return;
    llm_rt_event ev = {.state = st,
                       .prev = prev,
                       .reason = reason,
                       .pid = sev != NULL ? sev->pid : llm_runtime_pid(rt),
                       .stderr_tail = "",
                       .code = code};
    if (sev != NULL) {
        ev.cause = sev->cause;
        ev.stderr_tail = sev->stderr_tail != NULL ? sev->stderr_tail : "";
        ev.reaped = sev->reaped;
        ev.exited = sev->exited;
        ev.exit_code = sev->exit_code;
        ev.term_signal = sev->term_signal;
        ev.stop_how = sev->stop_how;
        ev.restarts = sev->restarts;
    }
    rt->on_event(rt->arg, rt, &ev);
}

/* Records why the runtime failed: reason, cause and the last stderr lines. */
static void set_failure(llm_runtime *rt, int code, const char *reason, proc_cause cause,
                        const char *tail)
{
    sbuf b = SBUF_INIT;
    sbuf_printf(&b, "llama-server %s", reason);
    if (cause != PROC_CAUSE_NONE && strstr(reason, proc_cause_text(cause)) == NULL)
        sbuf_printf(&b, " (cause: %s)", proc_cause_text(cause));
    if (tail != NULL && tail[0] != '\0') {
        /* keep the last lines: the detail buffer is bounded */
        const char *p = tail + strlen(tail);
        int lines = 0;
        while (p > tail) {
            p--;
            if (*p == '\n' && p[1] != '\0' && ++lines == RT_TAIL_LINES_IN_ERROR) {
                p++;
                break;
            }
        }
        sbuf_printf(&b, "\nlast stderr lines:\n%s", p);
    }
    err_set(&rt->error, code, "%s", sbuf_error(&b) == 0 ? sbuf_str(&b) : reason);
    sbuf_free(&b);
}

/* ---- the /health check --------------------------------------------------- */

static void on_health(void *arg, const http_result *res)
{
    rt_check *ck = arg;
    ck->inflight = NULL;
    char detail[256];
    sup_probe_result r;
    enum llm_health h;
    genai_error e;
    if (res->rc < 0) {
        r = SUP_PROBE_NO_ANSWER;
        snprintf(detail, sizeof(detail), "/health: %s", res->error);
    } else if (llm_health_parse(res->status, res->body, res->body_len, &h, &e) < 0) {
        r = SUP_PROBE_NOT_READY;
        snprintf(detail, sizeof(detail), "/health: %.200s", e.detail);
    } else if (h == LLM_HEALTH_OK) {
        r = SUP_PROBE_READY;
        snprintf(detail, sizeof(detail), "/health: 200 ok");
    } else {
        r = SUP_PROBE_NOT_READY;
        snprintf(detail, sizeof(detail), "/health: 503 loading model");
    }
    ck->cb(ck->cb_arg, r, detail);
}

static int check_probe(sup_check *self, int timeout_ms, sup_probe_cb cb, void *arg)
{
    rt_check *ck = (rt_check *)self;
    if (ck->inflight != NULL)
        return GENAI_EBUSY;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/health", (unsigned)ck->rt->port);
    http_get_opts o = {.url = url, .timeout_ms = timeout_ms, .max_body = RT_HEALTH_BODY_MAX};
    ck->cb = cb;
    ck->cb_arg = arg;
    return http_client_get(ck->rt->http, &o, on_health, ck, &ck->inflight);
}

static void check_cancel(sup_check *self)
{
    rt_check *ck = (rt_check *)self;
    http_req_cancel(ck->inflight);
    ck->inflight = NULL;
}

static void check_destroy(sup_check *self)
{
    check_cancel(self); /* embedded in the runtime: nothing to free */
}

/* ---- the learned footprint ----------------------------------------------- */

/* Reads "Name:   N kB" from /proc/<pid>/status text. */
static int status_kb(const char *text, const char *name, uint64_t *out)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(p + n + 1, &end, 10);
            if (errno != 0 || end == p + n + 1)
                return -1;
            *out = (uint64_t)v * 1024;
            return 0;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* GPU index of a device buffer type name ("CUDA0" -> 0, "ROCm1" -> 1). */
static int buftype_device(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || name[n - 1] < '0' || name[n - 1] > '9')
        return -1;
    while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9')
        n--;
    return (int)strtol(name + n, NULL, 10);
}

static void add_parts(plan_breakdown *b, const llm_mem_buftype *t)
{
    b->weights += t->bytes[LLM_BUF_MODEL];
    b->kv += t->bytes[LLM_BUF_KV] + t->bytes[LLM_BUF_RS];
    b->compute += t->bytes[LLM_BUF_COMPUTE];
    b->output += t->bytes[LLM_BUF_OUTPUT];
}

/* Builds the MEASURED demand of the ready child and records it. */
static void record_footprint(llm_runtime *rt)
{
    pid_t pid = llm_runtime_pid(rt);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    char *status = NULL;
    genai_error e;
    uint64_t rss_anon = 0, rss_file = 0;
    if (paths_read_file(path, 64 * 1024, &status, NULL, &e) < 0 ||
        status_kb(status, "RssAnon", &rss_anon) < 0 ||
        status_kb(status, "RssFile", &rss_file) < 0) {
        LOG_WARN(MOD, "%s: no RSS for pid %ld; footprint not recorded", rt->model_id, (long)pid);
        mem_free(status);
        return;
    }
    mem_free(status);

    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.n_gpus = rt->plan.n_gpus < PLAN_MAX_GPUS ? rt->plan.n_gpus : PLAN_MAX_GPUS;
    const llm_footprint *m = &rt->memlog;
    for (uint32_t i = 0; i < m->n_types; i++) {
        const llm_mem_buftype *t = &m->types[i];
        int dev = t->is_host ? -1 : buftype_device(t->name);
        if (t->is_host)
            add_parts(&d.host_parts, t);
        else if (dev >= 0 && (uint32_t)dev < d.n_gpus)
            add_parts(&d.gpu_parts[dev], t);
    }
    /* Per-process GPU memory as the driver reports it (the same source the
     * fit function reads), else the buffers the log named. */
    probe_snapshot snap;
    int have_snap = probe_take(NULL, &snap, &e) == 0;
    for (uint32_t i = 0; i < d.n_gpus; i++) {
        uint64_t buffers = plan_breakdown_total(&d.gpu_parts[i]);
        uint64_t used = UINT64_MAX;
        for (uint32_t k = 0; have_snap && i < snap.n_gpus && k < snap.gpus[i].n_processes; k++)
            if (snap.gpus[i].processes[k].pid == (int32_t)pid)
                used = snap.gpus[i].processes[k].used_bytes;
        if (used != UINT64_MAX) {
            d.gpu[i] = used;
            d.gpu_parts[i].driver = used > buffers ? used - buffers : 0;
        } else {
            d.gpu[i] = buffers;
        }
    }
    if (have_snap)
        probe_snapshot_free(&snap);

    /* RSS right after load misses what grows with use: the host compute
     * buffer's untouched pages and the prompt cache (planner.md "Growth"). */
    uint64_t growth = llm_footprint_sum(m, 1, LLM_BUF_COMPUTE);
    if (m->prompt_cache_mib > 0)
        growth += (uint64_t)m->prompt_cache_mib * PLAN_MIB;
    d.host_parts.prompt_cache =
        m->prompt_cache_mib > 0 ? (uint64_t)m->prompt_cache_mib * PLAN_MIB : 0;
    d.host_growth = growth;
    d.host_anon = rss_anon + growth;
    d.host_file = rss_file;
    uint64_t named = plan_breakdown_total(&d.host_parts);
    d.host_parts.runtime =
        d.host_anon + d.host_file > named ? d.host_anon + d.host_file - named : 0;
    d.tier = PLAN_TIER_MEASURED;
    plan_demand_set_note(
        &d, "measured pid %ld: RssAnon %" PRIu64 " kB, RssFile %" PRIu64 " kB, %u memory lines",
        (long)pid, rss_anon / 1024, rss_file / 1024, m->n_lines);
    snprintf(d.build, sizeof(d.build), "%s", rt->plan.build_info);
    rt->measured = d;
    rt->have_measured = 1;
    if (plan_footprints_record(rt->fp, rt->model_key, rt->config_key, &d, &e) < 0)
        LOG_WARN(MOD, "%s: footprint not recorded: %s", rt->model_id, e.detail);
}

/* ---- /props ---------------------------------------------------------------- */

static void props_fetch(llm_runtime *rt);

static void fail_and_stop(llm_runtime *rt, int code, const char *reason)
{
    set_failure(rt, code, reason, PROC_CAUSE_NONE, NULL);
    rt->fail_pending = 1;
    sup_stop(rt->sup);
}

static void on_props_timer(uv_timer_t *t)
{
    props_fetch(t->data);
}

static void on_props(void *arg, const http_result *res)
{
    llm_runtime *rt = arg;
    rt->props_req = NULL;
    if (rt->state != LLM_RT_LOADING || sup_get_state(rt->sup) != SUP_READY)
        return;
    char why[1024];
    if (res->rc < 0 || res->status != 200) {
        if (++rt->props_tries < RT_PROPS_TRIES) {
            uv_timer_start(&rt->props_timer, on_props_timer, RT_PROPS_RETRY_MS, 0);
            return;
        }
        snprintf(why, sizeof(why), "answered /health but not GET /props: %s %ld",
                 res->rc < 0 ? res->error : "HTTP", res->status);
        fail_and_stop(rt, GENAI_ENOT_READY, why);
        return;
    }
    llm_props props;
    genai_error e;
    if (llm_props_parse(res->body, res->body_len, &props, &e) < 0) {
        snprintf(why, sizeof(why), "answered GET /props with a body genai cannot read: %.400s",
                 e.detail);
        fail_and_stop(rt, GENAI_ENOT_READY, why);
        return;
    }
    /* §10: a server without -m (router mode) or with an inherited
     * configuration still answers /health; only /props says what it serves. */
    if (strcmp(props.model_alias, rt->model_id) != 0 ||
        (props.model_path[0] != '\0' && strcmp(props.model_path, rt->model) != 0)) {
        snprintf(why, sizeof(why),
                 "on port %u serves model '%.100s' (%.150s), but '%.100s' (%.150s) was asked for",
                 (unsigned)rt->port, props.model_alias, props.model_path, rt->model_id, rt->model);
        llm_props_free(&props);
        fail_and_stop(rt, GENAI_ENOT_READY, why);
        return;
    }
    rt->plan.props_n_ctx = props.n_ctx_slot;
    rt->plan.props_slots = props.total_slots;
    snprintf(rt->plan.build_info, sizeof(rt->plan.build_info), "%s", props.build_info);
    llm_props_free(&props);
    if (rt->plan.props_slots != rt->plan.choice.shape.n_seq)
        LOG_WARN(MOD, "%s: /props reports %u slots, %u were planned", rt->model_id,
                 rt->plan.props_slots, rt->plan.choice.shape.n_seq);
    record_footprint(rt);
    char msg[160];
    snprintf(msg, sizeof(msg), "ready on port %u: n_ctx %u per slot, %u slot(s)",
             (unsigned)rt->port, rt->plan.props_n_ctx, rt->plan.props_slots);
    emit(rt, LLM_RT_READY, msg, NULL, 0);
}

static void props_fetch(llm_runtime *rt)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/props", (unsigned)rt->port);
    http_get_opts o = {.url = url,
                       .bearer = rt->api_key,
                       .timeout_ms = RT_PROPS_TIMEOUT_MS,
                       .max_body = LLM_STATUS_BODY_MAX};
    if (http_client_get(rt->http, &o, on_props, rt, &rt->props_req) < 0)
        fail_and_stop(rt, GENAI_ENOT_READY, "could not request GET /props");
}

static void props_cancel(llm_runtime *rt)
{
    http_req_cancel(rt->props_req);
    rt->props_req = NULL;
    uv_timer_stop(&rt->props_timer);
}

/* ---- launch ---------------------------------------------------------------- */

static int build_argv(llm_runtime *rt, char ***out, genai_error *err)
{
    rt->launch.port = rt->port;
    return llm_launch_argv(&rt->launch, rt->build, out, err);
}

/* A child whose port was taken restarts on another one (§4: pick the port,
 * retry on the bind-failure signature). */
static void move_port(llm_runtime *rt)
{
    llm_port_range r;
    llm_port_range_system(&r);
    uint16_t port;
    char **argv = NULL;
    genai_error e;
    if (llm_port_pick(&r, &port, &e) < 0) {
        LOG_WARN(MOD, "%s: no other port: %s", rt->model_id, e.detail);
        return;
    }
    uint16_t old = rt->port;
    rt->port = port;
    if (build_argv(rt, &argv, &e) < 0 || sup_set_argv(rt->sup, (const char *const *)argv, &e) < 0) {
        LOG_WARN(MOD, "%s: cannot move to port %u: %s", rt->model_id, (unsigned)port, e.detail);
        rt->port = old;
    } else {
        LOG_INFO(MOD, "%s: port %u was taken; the restart uses %u", rt->model_id, (unsigned)old,
                 (unsigned)port);
    }
    llm_argv_free(argv);
}

static void on_sup_event(void *arg, sup *s, const sup_event *ev)
{
    (void)s;
    llm_runtime *rt = arg;
    switch (ev->state) {
    case SUP_STARTED:
        llm_footprint_init(&rt->memlog); /* a restarted server logs its lines again */
        emit(rt, LLM_RT_STARTING, ev->reason, ev, 0);
        break;
    case SUP_LOADING:
        emit(rt, LLM_RT_LOADING, ev->reason, ev, 0);
        break;
    case SUP_READY:
        if (rt->state != LLM_RT_LOADING)
            emit(rt, LLM_RT_LOADING, "health ok; checking /props", ev, 0);
        if (rt->state == LLM_RT_LOADING && sup_get_state(rt->sup) == SUP_READY) {
            rt->props_tries = 0;
            props_fetch(rt);
        }
        break;
    case SUP_STOPPING:
        props_cancel(rt);
        emit(rt, LLM_RT_STOPPING, ev->reason, ev, 0);
        break;
    case SUP_CRASHED:
        props_cancel(rt);
        set_failure(rt, cause_code(ev->cause), ev->reason, ev->cause, ev->stderr_tail);
        emit(rt, LLM_RT_CRASHED, ev->reason, ev, rt->error.code);
        if (rt->state == LLM_RT_CRASHED &&
            (ev->cause == PROC_CAUSE_BAD_ARG || ev->cause == PROC_CAUSE_BAD_MODEL)) {
            rt->fail_pending = 1; /* a restart would fail the same way */
            sup_stop(rt->sup);
        }
        break;
    case SUP_BACKOFF:
        if (ev->cause == PROC_CAUSE_PORT)
            move_port(rt);
        emit(rt, LLM_RT_RESTARTING, ev->reason, ev, 0);
        break;
    case SUP_FAILED:
        props_cancel(rt);
        set_failure(rt, ev->cause == PROC_CAUSE_EXEC ? GENAI_ECHILD_EXITED : cause_code(ev->cause),
                    ev->reason, ev->cause, ev->stderr_tail);
        emit(rt, LLM_RT_FAILED, ev->reason, ev, rt->error.code);
        break;
    case SUP_STOPPED:
        props_cancel(rt);
        if (rt->fail_pending && !rt->stop_requested) {
            rt->fail_pending = 0;
            emit(rt, LLM_RT_FAILED, rt->error.detail, ev, rt->error.code);
        } else {
            rt->fail_pending = 0;
            emit(rt, LLM_RT_STOPPED, ev->reason, ev, 0);
        }
        break;
    }
}

static void on_sup_line(void *arg, sup *s, int stream, const char *line, size_t len)
{
    (void)s;
    llm_runtime *rt = arg;
    if (stream == 2)
        llm_memlog_feed(&rt->memlog, line, len);
}

/* ---- planning ---------------------------------------------------------------- */

static void deficit_text(const llm_rt_plan *pl, sbuf *b)
{
    const plan_fit_result *f = &pl->choice.fit;
    char a[32];
    const char *sep = "";
    for (uint32_t i = 0; i < f->n_gpus; i++) {
        if (f->gpu_deficit[i] == 0)
            continue;
        sbuf_printf(b, "%sneeds %s more on GPU %u (%s)", sep,
                    fmt_mib(a, sizeof(a), f->gpu_deficit[i]), i,
                    i < pl->n_gpus ? pl->gpu_names[i] : "?");
        sep = ", ";
    }
    if (f->host_deficit > 0)
        sbuf_printf(b, "%sneeds %s more host memory", sep, fmt_mib(a, sizeof(a), f->host_deficit));
}

/* Identity of the model file plus the devices, for learned footprints. */
static int model_identity(llm_runtime *rt, const probe_snapshot *snap, genai_error *err)
{
    struct stat st;
    if (stat(rt->model, &st) != 0)
        return err_errno(err, errno, "stat %s", rt->model);
    sbuf b = SBUF_INIT;
    sbuf_printf(&b, "%s size=%lld mtime=%lld dev=", rt->model, (long long)st.st_size,
                (long long)st.st_mtime);
    if (snap->n_gpus == 0)
        sbuf_puts(&b, "cpu");
    for (uint32_t i = 0; i < snap->n_gpus; i++)
        sbuf_printf(&b, "%s%s", i ? "," : "", snap->gpus[i].name);
    int rc = 0;
    if (sbuf_error(&b) < 0)
        rc = err_set(err, -ENOMEM, "model identity");
    else if (b.len >= sizeof(rt->model_key))
        rc = err_set(err, GENAI_ETOO_LARGE, "model identity longer than %zu bytes",
                     sizeof(rt->model_key));
    else
        memcpy(rt->model_key, sbuf_str(&b), b.len + 1);
    sbuf_free(&b);
    return rc;
}

static int plan(llm_runtime *rt, genai_error *err)
{
    gguf_profile p;
    int rc = gguf_profile_load(rt->model, &p, err);
    if (rc < 0)
        return err_prefix(err, "reading %s", rt->model);
    probe_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    rc = probe_take(NULL, &snap, err);
    if (rc < 0)
        goto out_profile;

    llm_rt_plan *pl = &rt->plan;
    /* The configuration the last start chose, for a reload (see below). */
    plan_llm_choice prev = pl->choice;
    int had_prev = rt->have_plan;
    memset(pl, 0, sizeof(*pl));
    pl->n_gpus = snap.n_gpus < PLAN_MAX_GPUS ? snap.n_gpus : PLAN_MAX_GPUS;
    pl->n_layer = p.n_layer;
    for (uint32_t i = 0; i < pl->n_gpus; i++)
        snprintf(pl->gpu_names[i], sizeof(pl->gpu_names[i]), "%.63s", snap.gpus[i].name);

    plan_llm_config base;
    llm_rt_base_config(&rt->cfg, snap.n_gpus, &base);
    if (snap.n_gpus == 0 && rt->cfg.ngl > 0)
        LOG_WARN(MOD, "%s: no GPU found; -ngl %d becomes 0", rt->model_id, (int)rt->cfg.ngl);

    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    rc = model_identity(rt, &snap, err);
    if (rc < 0)
        goto out_snap;

    /* A reload (a restart, or the orchestrator bringing the LLM back) first
     * tries the configuration it had, priced by what that run really used:
     * measured beats estimated (DESIGN.md principle 1), so an estimate that
     * has grown too big cannot refuse a configuration that ran here. */
    if (had_prev &&
        plan_llm_config_key(&p, &prev.cfg, rt->config_key, sizeof(rt->config_key), NULL) == 0) {
        plan_demand d;
        plan_fit_result fit;
        if (plan_llm_demand(rt->fp, rt->model_key, &p, &prev.cfg, NULL, &d, NULL) ==
                PLAN_TIER_MEASURED &&
            plan_fit(&env, &d, &fit, NULL) == 0) {
            rt->have_plan = 1;
            pl->choice = prev;
            pl->choice.fit = fit;
            pl->demand = d;
            goto out_snap; /* rc == 0 */
        }
    }

    int arc = plan_llm_autoconfig(&p, &base, &env, rt->cfg.ctx_floor, &pl->choice, err);
    rt->have_plan = arc == 0 || arc == GENAI_ENO_FIT;
    if (!rt->have_plan) {
        rc = arc;
        goto out_snap;
    }
    rc = plan_llm_config_key(&p, &pl->choice.cfg, rt->config_key, sizeof(rt->config_key), err);
    if (rc < 0)
        goto out_snap;
    /* The best tier for the chosen configuration (or, when nothing fit by the
     * estimate, the closest one: with every field pinned, as the orchestrator
     * pins a reload, that is the pinned configuration), checked with the one
     * fit function: a footprint measured last time overrides the estimate
     * auto-configuration used, in both directions. */
    int tier = plan_llm_demand(rt->fp, rt->model_key, &p, &pl->choice.cfg, NULL, &pl->demand, err);
    if (tier < 0) {
        rc = tier;
        goto out_snap;
    }
    if (tier != PLAN_TIER_ESTIMATE) {
        rc = plan_fit(&env, &pl->demand, &pl->choice.fit, err);
    } else {
        rc = arc;
        if (arc == GENAI_ENO_FIT)
            pl->demand = pl->choice.demand;
    }
    if (rc == GENAI_ENO_FIT) {
        /* When the caller fixed -ngl or -c, say what would fit instead. */
        if (base.n_gpu_layers != PLAN_NGL_AUTO || base.n_ctx != 0) {
            plan_llm_config open = base;
            open.n_gpu_layers = snap.n_gpus == 0 ? 0 : PLAN_NGL_AUTO;
            open.n_ctx = 0;
            plan_llm_choice alt;
            if (plan_llm_autoconfig(&p, &open, &env, 0, &alt, NULL) == 0) {
                pl->suggest_ok = 1;
                pl->suggest_ngl = alt.cfg.n_gpu_layers;
                pl->suggest_ctx = alt.cfg.n_ctx;
            }
        }
        sbuf b = SBUF_INIT;
        sbuf_printf(&b, "%s does not fit: ", rt->model_id);
        deficit_text(pl, &b);
        sbuf_printf(&b, " (closest: -ngl %d -c %u, KV %s, %s)", (int)pl->choice.cfg.n_gpu_layers,
                    pl->choice.shape.n_ctx, plan_cache_type_name(pl->choice.shape.type_k),
                    plan_tier_name(pl->demand.tier));
        rc = err_set(err, GENAI_ENO_FIT, "%s", sbuf_error(&b) == 0 ? sbuf_str(&b) : "no fit");
        sbuf_free(&b);
    }
out_snap:
    probe_snapshot_free(&snap);
out_profile:
    gguf_profile_free(&p);
    return rc;
}

/* Run directory: key file and the child's HOME, private to this runtime. */
static int prepare_dir(llm_runtime *rt, genai_error *err)
{
    if (rt->run_dir[0] == '\0') {
        char base[PATHS_MAX];
        if (rt->run_dir_cfg != NULL) {
            snprintf(base, sizeof(base), "%s", rt->run_dir_cfg);
        } else {
            genai_paths gp;
            int rc = paths_resolve(&gp, err);
            if (rc < 0)
                return rc;
            if (paths_join(base, sizeof(base), gp.runtime, "llm") < 0)
                return err_set(err, -ENAMETOOLONG, "runtime directory too long");
        }
        int n = snprintf(rt->run_dir, sizeof(rt->run_dir), "%s/llama-%ld-%u", base, (long)getpid(),
                         atomic_fetch_add(&rt_seq, 1));
        if (n < 0 || (size_t)n >= sizeof(rt->run_dir) - 32) {
            rt->run_dir[0] = '\0';
            return err_set(err, -ENAMETOOLONG, "runtime directory too long");
        }
        if (paths_join(rt->home, sizeof(rt->home), rt->run_dir, "home") < 0 ||
            paths_join(rt->key_path, sizeof(rt->key_path), rt->run_dir, "api-key") < 0) {
            rt->run_dir[0] = '\0';
            return err_set(err, -ENAMETOOLONG, "runtime directory too long");
        }
    }
    int rc = paths_mkdirs(rt->run_dir, 0700, err);
    if (rc < 0)
        return rc;
    rc = llm_api_key_new(rt->api_key, err);
    if (rc < 0)
        return rc;
    int fd = open(rt->key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_errno(err, errno, "creating %s", rt->key_path);
    char line[LLM_API_KEY_LEN + 2];
    int len = snprintf(line, sizeof(line), "%s\n", rt->api_key);
    ssize_t w = write(fd, line, (size_t)len);
    int saved = errno;
    close(fd);
    if (w != len)
        return err_errno(err, w < 0 ? saved : EIO, "writing %s", rt->key_path);
    return 0;
}

static void remove_dir(llm_runtime *rt)
{
    if (rt->run_dir[0] == '\0')
        return;
    unlink(rt->key_path);
    rmdir(rt->home); /* best effort: the child may have left files there */
    rmdir(rt->run_dir);
}

static uint32_t server_build(const char *server)
{
    const char *argv[] = {server, "--version", NULL};
    proc_capture cap;
    genai_error e;
    if (proc_run_capture(argv, RT_VERSION_TIMEOUT_MS, LLM_VERSION_TEXT_MAX, &cap, &e) < 0) {
        LOG_WARN(MOD, "%s --version: %s", server, e.detail);
        return 0;
    }
    llm_version v;
    uint32_t build = 0;
    if (llm_version_parse(cap.err, cap.err_len, &v, &e) == 0 ||
        llm_version_parse(cap.out, cap.out_len, &v, &e) == 0)
        build = v.build;
    else
        LOG_WARN(MOD, "%s --version: %s", server, e.detail);
    proc_capture_free(&cap);
    return build;
}

static void fill_launch(llm_runtime *rt)
{
    const plan_llm_choice *c = &rt->plan.choice;
    llm_launch *l = &rt->launch;
    llm_launch_defaults(l);
    l->binary = rt->server;
    l->model = rt->model;
    l->api_key_file = rt->key_path;
    l->alias = rt->model_id;
    l->ctx = c->shape.n_ctx;
    l->ngl = (int32_t)c->shape.gpu_units;
    l->parallel = c->shape.n_seq;
    l->kv_unified = c->shape.kv_unified;
    enum llm_cache_type t;
    if (llm_cache_type_parse(plan_cache_type_name(c->shape.type_k), &t) == 0)
        l->ctk = t;
    if (llm_cache_type_parse(plan_cache_type_name(c->shape.type_v), &t) == 0)
        l->ctv = t;
    l->fa = c->cfg.flash_attn == PLAN_FA_ON    ? LLM_FA_ON
            : c->cfg.flash_attn == PLAN_FA_OFF ? LLM_FA_OFF
                                               : LLM_FA_AUTO;
    l->threads = (int32_t)c->cfg.threads;
    l->load_mode = rt->cfg.no_mmap ? LLM_LOAD_NONE : LLM_LOAD_MMAP;
    l->cache_ram_mib = 0;
    l->verbosity = 4; /* the memory lines (§5.3) */
    l->sse_ping_s = rt->cfg.sse_ping_s;
    l->extra = (const char *const *)rt->extra;
}

/* extra = the caller's extra flags, plus -ts for several GPUs. */
static int build_extra(llm_runtime *rt, genai_error *err)
{
    llm_argv_free(rt->extra);
    rt->extra = strv_copy((const char *const *)rt->extra_cfg, 2);
    if (rt->extra == NULL)
        return err_set(err, -ENOMEM, "copying extra flags");
    const plan_llm_config *c = &rt->plan.choice.cfg;
    if (c->n_gpus < 2 || rt->plan.choice.shape.gpu_units == 0)
        return 0;
    size_t off = 0;
    for (uint32_t i = 0; i < c->n_gpus && i < PLAN_MAX_GPUS; i++)
        off += (size_t)snprintf(rt->ts_arg + off, sizeof(rt->ts_arg) - off, "%s%.0f", i ? "," : "",
                                (double)c->tensor_split[i]);
    size_t n = 0;
    while (rt->extra[n] != NULL)
        n++;
    rt->extra[n] = mem_strdup("-ts");
    rt->extra[n + 1] = rt->extra[n] != NULL ? mem_strdup(rt->ts_arg) : NULL;
    if (rt->extra[n + 1] == NULL)
        return err_set(err, -ENOMEM, "copying extra flags");
    return 0;
}

/* ---- public ------------------------------------------------------------------- */

void llm_rt_base_config(const llm_rt_config *cfg, uint32_t n_gpus, plan_llm_config *out)
{
    plan_llm_config_init(out);
    out->n_gpu_layers = cfg->ngl;
    if (n_gpus == 0 && out->n_gpu_layers > 0)
        out->n_gpu_layers = 0;
    out->n_ctx = cfg->ctx;
    out->n_parallel = cfg->parallel != 0 ? cfg->parallel : 1;
    out->kv_unified = 1;
    out->type_k = out->type_v = cfg->kv;
    out->flash_attn = cfg->fa;
    out->use_mmap = !cfg->no_mmap;
    out->cache_ram_mib = 0; /* -cram 0: see docs/llm-driver.md */
    out->threads = cfg->threads;
}

void llm_rt_config_init(llm_rt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ngl = PLAN_NGL_AUTO;
}

static char *default_id(const char *model)
{
    const char *base = strrchr(model, '/');
    base = base != NULL ? base + 1 : model;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    return mem_strndup(base, n);
}

static void on_timer_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static void release(llm_runtime *rt)
{
    mem_free(rt->model);
    mem_free(rt->model_id);
    mem_free(rt->server_path);
    mem_free(rt->run_dir_cfg);
    mem_free(rt->log_dir);
    mem_free(rt->server);
    llm_argv_free(rt->extra_cfg);
    llm_argv_free(rt->extra);
    llm_env_free(rt->envp);
    if (rt->own_fp)
        plan_footprints_free(rt->fp);
}

int llm_runtime_new(uv_loop_t *uv, const llm_rt_config *cfg, plan_footprints *fp,
                    llm_rt_event_fn on_event, void *arg, llm_runtime **out, genai_error *err)
{
    if (uv == NULL || cfg == NULL || cfg->model == NULL || cfg->model[0] == '\0' || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "llm runtime: a model path is required");
    llm_runtime *rt = mem_calloc(1, sizeof(*rt));
    if (rt == NULL)
        return err_set(err, -ENOMEM, "allocating an llm runtime");
    rt->uv = uv;
    rt->cfg = *cfg;
    rt->on_event = on_event;
    rt->arg = arg;
    rt->fp = fp;
    rt->model = mem_strdup(cfg->model);
    rt->model_id = cfg->model_id != NULL ? mem_strdup(cfg->model_id) : default_id(cfg->model);
    rt->server_path = cfg->server_path != NULL ? mem_strdup(cfg->server_path) : NULL;
    rt->run_dir_cfg = cfg->run_dir != NULL ? mem_strdup(cfg->run_dir) : NULL;
    rt->log_dir = cfg->log_dir != NULL ? mem_strdup(cfg->log_dir) : NULL;
    rt->extra_cfg = strv_copy(cfg->extra_args, 0);
    if (fp == NULL) {
        rt->fp = plan_footprints_new();
        rt->own_fp = 1;
    }
    int rc = -ENOMEM;
    if (rt->model == NULL || rt->model_id == NULL || rt->extra_cfg == NULL || rt->fp == NULL ||
        (cfg->server_path != NULL && rt->server_path == NULL) ||
        (cfg->run_dir != NULL && rt->run_dir_cfg == NULL) ||
        (cfg->log_dir != NULL && rt->log_dir == NULL)) {
        err_set(err, rc, "allocating an llm runtime");
        goto fail;
    }
    if (rt->model_id[0] == '\0') {
        rc = err_set(err, GENAI_EBAD_ARG, "llm runtime: empty model id");
        goto fail;
    }
    rt->cfg.model = rt->model;
    rt->cfg.model_id = rt->model_id;
    rt->cfg.server_path = rt->server_path;
    rt->cfg.run_dir = rt->run_dir_cfg;
    rt->cfg.log_dir = rt->log_dir;
    rt->cfg.extra_args = (const char *const *)rt->extra_cfg;
    if (rt->cfg.ready_timeout_ms <= 0)
        rt->cfg.ready_timeout_ms = RT_READY_TIMEOUT_MS;
    if (rt->cfg.restart_max == 0)
        rt->cfg.restart_max = RT_RESTART_MAX;
    if (rt->cfg.sse_ping_s <= 0)
        rt->cfg.sse_ping_s = RT_SSE_PING_S;
    if (rt->cfg.stop_grace_ms <= 0)
        rt->cfg.stop_grace_ms = 2 * rt->cfg.sse_ping_s * 1000 + 1000;
    if (rt->cfg.stop_term2_ms <= 0)
        rt->cfg.stop_term2_ms = RT_TERM2_MS;
    if (rt->cfg.watchdog_interval_ms == 0)
        rt->cfg.watchdog_interval_ms = RT_WATCHDOG_MS;
    rc = http_client_new(uv, &rt->http, err);
    if (rc < 0)
        goto fail;
    build_patterns(rt);
    llm_footprint_init(&rt->memlog);
    rt->check.base = (sup_check){check_probe, check_cancel, check_destroy};
    rt->check.rt = rt;
    uv_timer_init(uv, &rt->props_timer);
    rt->props_timer.data = rt;
    *out = rt;
    return 0;

fail:
    release(rt);
    mem_free(rt);
    return rc;
}

int llm_runtime_start(llm_runtime *rt, genai_error *err)
{
    if (rt->state != LLM_RT_STOPPED && rt->state != LLM_RT_FAILED)
        return err_set(err, GENAI_EBUSY, "%s is %s", rt->model_id, llm_rt_state_name(rt->state));
    genai_error local;
    genai_error *e = err != NULL ? err : &local;
    genai_error_clear(e);
    genai_error_clear(&rt->error);
    rt->stop_requested = 0;
    rt->fail_pending = 0;
    char **argv = NULL;

    int rc = plan(rt, e);
    if (rc < 0)
        goto fail;
    if (rt->server == NULL) {
        rc = llm_find_server(rt->server_path, &rt->server, e);
        if (rc < 0)
            goto fail;
        rt->build = server_build(rt->server);
    }
    rc = prepare_dir(rt, e);
    if (rc < 0)
        goto fail;
    if (rt->envp == NULL) {
        const char *set[] = {"CUDA_DEVICE_ORDER=PCI_BUS_ID", NULL};
        rc = llm_env_build((const char *const *)environ, rt->home, set, &rt->envp, e);
        if (rc < 0)
            goto fail;
    }
    rc = build_extra(rt, e);
    if (rc < 0)
        goto fail;
    if (rt->cfg.port != 0) {
        rt->port = rt->cfg.port;
    } else {
        llm_port_range r;
        llm_port_range_system(&r);
        rc = llm_port_pick(&r, &rt->port, e);
        if (rc < 0)
            goto fail;
    }
    fill_launch(rt);
    rc = build_argv(rt, &argv, e);
    if (rc < 0)
        goto fail;

    if (rt->sup == NULL) {
        char name[96];
        snprintf(name, sizeof(name), "llama-server-%.60s", rt->model_id);
        for (char *p = name; *p != '\0'; p++)
            if (*p == '/' || *p == ' ')
                *p = '_';
        sup_opts so = {
            .name = name,
            .argv = (const char *const *)argv,
            .envp = (const char *const *)rt->envp,
            .log_dir = rt->log_dir,
            .check = &rt->check.base,
            .ready_timeout_ms = rt->cfg.ready_timeout_ms,
            .probe_min_ms = rt->cfg.probe_min_ms,
            .watchdog_interval_ms =
                rt->cfg.watchdog_interval_ms > 0 ? rt->cfg.watchdog_interval_ms : 0,
            .watchdog_failures = 3,
            .stop_grace_ms = rt->cfg.stop_grace_ms,
            .stop_term2_ms = rt->cfg.stop_term2_ms,
            .restart_max = rt->cfg.restart_max > 0 ? rt->cfg.restart_max : 0,
            .backoff_ms = rt->cfg.backoff_ms,
            .patterns = rt->patterns,
            .on_event = on_sup_event,
            .on_line = on_sup_line,
            .arg = rt,
        };
        rc = sup_new(rt->uv, &so, &rt->sup, e);
    } else {
        rc = sup_set_argv(rt->sup, (const char *const *)argv, e);
    }
    llm_argv_free(argv);
    argv = NULL;
    if (rc < 0)
        goto fail;
    rc = sup_start(rt->sup, e);
    if (rc < 0)
        goto fail;
    return 0;

fail:
    llm_argv_free(argv);
    err_set(&rt->error, rc, "%s", e->detail);
    return rc;
}

void llm_runtime_stop(llm_runtime *rt)
{
    rt->stop_requested = 1;
    props_cancel(rt);
    if (rt->sup != NULL && sup_get_state(rt->sup) != SUP_STOPPED) {
        sup_stop(rt->sup);
        return;
    }
    if (rt->state != LLM_RT_STOPPED)
        emit(rt, LLM_RT_STOPPED, "stop requested", NULL, 0);
}

void llm_runtime_free(llm_runtime *rt)
{
    if (rt == NULL)
        return;
    rt->on_event = NULL;
    props_cancel(rt);
    sup_free(rt->sup); /* SIGKILLs and reaps a running child */
    http_client_free(rt->http);
    remove_dir(rt);
    release(rt);
    /* the timer's close callback frees rt */
    uv_close((uv_handle_t *)&rt->props_timer, on_timer_closed);
}

llm_rt_state llm_runtime_state(const llm_runtime *rt)
{
    return rt->state;
}

pid_t llm_runtime_pid(const llm_runtime *rt)
{
    return rt->sup != NULL ? sup_pid(rt->sup) : 0;
}

const llm_rt_config *llm_runtime_config(const llm_runtime *rt)
{
    return &rt->cfg;
}

const llm_rt_plan *llm_runtime_plan(const llm_runtime *rt)
{
    return rt->have_plan ? &rt->plan : NULL;
}

int llm_runtime_endpoint(const llm_runtime *rt, llm_rt_endpoint *out, genai_error *err)
{
    if (rt->state != LLM_RT_READY)
        return err_set(err, GENAI_ENOT_READY, "%s is %s", rt->model_id,
                       llm_rt_state_name(rt->state));
    out->port = rt->port;
    snprintf(out->api_key, sizeof(out->api_key), "%s", rt->api_key);
    snprintf(out->model_id, sizeof(out->model_id), "%s", rt->model_id);
    return 0;
}

const llm_footprint *llm_runtime_memlog(const llm_runtime *rt)
{
    return &rt->memlog;
}

int llm_runtime_measured(const llm_runtime *rt, plan_demand *out)
{
    if (!rt->have_measured)
        return 0;
    *out = rt->measured;
    return 1;
}

const genai_error *llm_runtime_error(const llm_runtime *rt)
{
    return &rt->error;
}

void llm_runtime_tail(const llm_runtime *rt, int stream, size_t max_lines, sbuf *out)
{
    if (rt->sup != NULL)
        sup_tail(rt->sup, stream, max_lines, out);
}

const char *llm_runtime_model_key(const llm_runtime *rt)
{
    return rt->model_key;
}

const char *llm_runtime_config_key(const llm_runtime *rt)
{
    return rt->config_key;
}

const char *llm_rt_state_name(llm_rt_state st)
{
    static const char *const names[] = {"stopped",  "starting", "loading",    "ready",
                                        "stopping", "crashed",  "restarting", "failed"};
    if ((unsigned)st < sizeof(names) / sizeof(names[0]))
        return names[st];
    return "unknown";
}
