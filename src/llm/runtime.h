/*
 * runtime.h - one llama-server, planned, started, watched and stopped on the
 * loop thread: the LLM runtime.
 *
 * llm_runtime_start() does, in order: load the model's profile (GGUF
 * metadata), take a probe snapshot, choose the configuration with the
 * planner's auto-configuration and check the best-tier demand with the one
 * fit function (GENAI_ENO_FIT, with the deficit per GPU and host, refuses
 * the start before anything is spawned), find llama-server, build its argv
 * with the driver (127.0.0.1, a private port, a random API key in a 0600
 * file, alias = the model id, --fit off with explicit values, -lv 4 so the
 * memory lines can be read) and a controlled environment, and hand it to the
 * supervisor with the driver's crash-signature table and a /health
 * readiness check. When /health is ready it reads /props (the real per-slot
 * context and slot count) and checks the server serves the alias and model
 * it was asked for; then it records a learned footprint (memory lines +
 * /proc/<pid>/status RssAnon/RssFile + the probe's per-process GPU memory)
 * and reports READY.
 *
 * States (llm_rt_state) reach the owner through one callback, on the loop
 * thread:
 *
 *   STOPPED -> STARTING -> LOADING -> READY -> STOPPING -> STOPPED
 *                 |          |         |
 *                 +----------+---------+--> CRASHED -> RESTARTING -> STARTING
 *                                                   \-> FAILED
 *
 * Restarts (backoff, a bounded death tally) and the hang watchdog are the
 * supervisor's. The runtime adds three decisions: a child that died because
 * its port was taken is restarted on a newly picked port; a death whose cause
 * a restart cannot fix (bad argument, bad model file) fails at once; a
 * /props mismatch stops the child and fails. After FAILED the detail is in
 * llm_runtime_error().
 *
 * The configuration is deep-copied at creation and kept, so a later start
 * (a reload by the orchestrator) starts the same model the same way; each
 * start plans again against a fresh snapshot.
 *
 * Threading: every function here must be called on the thread that runs the
 * uv loop given to llm_runtime_new (loop.h's thread in genai). Start does
 * bounded blocking work on that thread (profile load, probe, the
 * `--version` run, capped at 5 s).
 */
#ifndef GENAI_LLM_RUNTIME_H
#define GENAI_LLM_RUNTIME_H

#include "core/error.h"
#include "llm/memlog.h"
#include "plan/autoconf.h"
#include "plan/footprint.h"
#include "proc/supervisor.h"

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

typedef enum llm_rt_state {
    LLM_RT_STOPPED = 0, /* no child */
    LLM_RT_STARTING,    /* spawned, nothing answered yet */
    LLM_RT_LOADING,     /* /health says "loading", or /props is being checked */
    LLM_RT_READY,       /* /health ok, /props checked, footprint recorded */
    LLM_RT_STOPPING,    /* stop escalation under way */
    LLM_RT_CRASHED,     /* died unasked (momentary) */
    LLM_RT_RESTARTING,  /* waiting out the backoff before a restart */
    LLM_RT_FAILED,      /* gave up; llm_runtime_error() says why */
} llm_rt_state;

typedef struct llm_runtime llm_runtime;

typedef struct llm_rt_event {
    llm_rt_state state;
    llm_rt_state prev;
    const char *reason;      /* human text, valid during the callback */
    pid_t pid;               /* the child concerned, 0 when none */
    proc_cause cause;        /* CRASHED, RESTARTING, FAILED */
    const char *stderr_tail; /* last stderr lines ("\n"-separated, "" if none) */
    int reaped;              /* 1: the exit fields below are valid */
    int exited, exit_code, term_signal;
    sup_stop_how stop_how;
    int restarts; /* deaths counted in the supervisor's window */
    int code;     /* FAILED: the error code (llm_runtime_error has the detail) */
} llm_rt_event;

typedef void (*llm_rt_event_fn)(void *arg, llm_runtime *rt, const llm_rt_event *ev);

/*
 * What to run and how. Zero means "default" for every field; strings are
 * copied by llm_runtime_new.
 */
typedef struct llm_rt_config {
    const char *model;       /* GGUF path (the first shard of a split set); required */
    const char *model_id;    /* alias; NULL: the file name without ".gguf" */
    const char *server_path; /* NULL: discovery (GENAI_LLAMA_SERVER, PATH) */
    /* Planning: fields left at their defaults are chosen by auto-configuration. */
    uint32_t ctx;                  /* -c; 0: the largest that fits */
    int32_t ngl;                   /* -ngl units; PLAN_NGL_AUTO (set by llm_rt_config_init) */
    enum plan_cache_type kv;       /* -ctk/-ctv; PLAN_CACHE_DEFAULT: f16, q8_0 if needed */
    uint32_t parallel;             /* -np; 0: 1 slot */
    enum plan_fa fa;               /* -fa */
    uint32_t threads;              /* -t; 0: physical cores */
    int no_mmap;                   /* 1: -lm none */
    uint32_t ctx_floor;            /* smallest context auto-configuration accepts; 0: 4096 */
    const char *const *extra_args; /* appended to argv (llm_launch.extra); may be NULL */
    /* Files: run_dir holds the key file and the child's HOME; NULL: the
     * runtime directory of paths.h + "/llm". log_dir NULL: no log file. */
    const char *run_dir;
    const char *log_dir;
    /* Process policy. */
    uint16_t port;            /* port of the first attempt; 0: picked */
    int ready_timeout_ms;     /* 0: 600000 (big models load for minutes) */
    int restart_max;          /* deaths per window before FAILED; 0: 3; < 0: none */
    int backoff_ms;           /* first restart delay; 0: 1000 */
    int sse_ping_s;           /* --sse-ping-interval; 0: 2 */
    int stop_grace_ms;        /* 0: 2 x ping + 1 s (contracts/llama-server.md §8) */
    int stop_term2_ms;        /* 0: 2000 */
    int watchdog_interval_ms; /* 0: 5000; < 0: no watchdog */
    int probe_min_ms;         /* first /health delay; 0: 50 */
} llm_rt_config;

/* Zeroes cfg and sets ngl to PLAN_NGL_AUTO. */
void llm_rt_config_init(llm_rt_config *cfg);

/*
 * The planner configuration genai launches llama-server with for cfg on a
 * machine with n_gpus GPUs: 1 slot unless asked, unified KV, no prompt cache
 * (-cram 0), -ngl 0 without a GPU. Fields cfg leaves open stay open for
 * auto-configuration. `genai inspect` uses it too, so what inspect prints is
 * what `genai run` would plan.
 */
void llm_rt_base_config(const llm_rt_config *cfg, uint32_t n_gpus, plan_llm_config *out);

/* What was planned for the current (or last) start, and what /props said. */
typedef struct llm_rt_plan {
    plan_llm_choice choice; /* configuration, shape, demand, fit */
    plan_demand demand;     /* the demand checked (best tier: measured, else estimate) */
    uint32_t n_gpus;        /* GPUs in the snapshot */
    uint32_t n_layer;       /* the model's repeating layers (-ngl counts n_layer + 1) */
    char gpu_names[PLAN_MAX_GPUS][64];
    uint32_t props_n_ctx; /* /props: per-slot context; 0 until READY */
    uint32_t props_slots; /* /props: total_slots */
    char build_info[64];  /* /props: build_info */
    /* When the start was refused and the caller fixed -ngl or -c: a
     * configuration with those fields open that fits (suggest_ok = 1). */
    int suggest_ok;
    int32_t suggest_ngl;
    uint32_t suggest_ctx;
} llm_rt_plan;

/* Where to reach a READY runtime. */
typedef struct llm_rt_endpoint {
    uint16_t port;
    char api_key[72];
    char model_id[256];
} llm_rt_endpoint;

/*
 * Creates a runtime on uv (state STOPPED). fp (may be NULL: the runtime keeps
 * its own table) is the learned-footprint table to consult and record into;
 * it is borrowed and must outlive the runtime. on_event may be NULL. Free
 * with llm_runtime_free().
 */
int llm_runtime_new(uv_loop_t *uv, const llm_rt_config *cfg, plan_footprints *fp,
                    llm_rt_event_fn on_event, void *arg, llm_runtime **out, genai_error *err);

/*
 * Plans and starts (from STOPPED or FAILED). Returns 0 once the child is
 * spawned (STARTING; readiness follows as events), or fails without a
 * child: GENAI_ENO_FIT (detail: the deficit per GPU and host), the errors of
 * the GGUF reader, GENAI_ENOT_FOUND/GENAI_EBAD_ARG from discovery, the
 * spawn's errno; GENAI_EBUSY in other states. A failure before the spawn
 * leaves the state as it was and is also kept for llm_runtime_error().
 */
int llm_runtime_start(llm_runtime *rt, genai_error *err);

/* Stops the child (SIGTERM, grace, SIGTERM, SIGKILL; always reaped). From
 * RESTARTING or FAILED it goes straight to STOPPED. No-op when stopped. */
void llm_runtime_stop(llm_runtime *rt);

/*
 * Frees the runtime. A running child is SIGKILLed and reaped first. Handles
 * close asynchronously, so the loop must run afterwards. No callback runs
 * after this. Accepts NULL.
 */
void llm_runtime_free(llm_runtime *rt);

llm_rt_state llm_runtime_state(const llm_runtime *rt);
/* The child's pid, 0 when there is none. */
pid_t llm_runtime_pid(const llm_runtime *rt);
/* The kept copy of the configuration (strings owned by the runtime). */
const llm_rt_config *llm_runtime_config(const llm_runtime *rt);
/* The plan of the current or last start; NULL before the first plan. */
const llm_rt_plan *llm_runtime_plan(const llm_runtime *rt);
/* Port, key and model id; GENAI_ENOT_READY unless READY. */
int llm_runtime_endpoint(const llm_runtime *rt, llm_rt_endpoint *out, genai_error *err);
/* The memory lines parsed from the current (or last) child's log. */
const llm_footprint *llm_runtime_memlog(const llm_runtime *rt);
/* The footprint recorded at the last READY into *out: 1 when there is one,
 * 0 when not yet. */
int llm_runtime_measured(const llm_runtime *rt, plan_demand *out);
/* The last failure (code 0 when none): why the last start was refused or
 * why the runtime FAILED, with the child's stderr tail when it died. */
const genai_error *llm_runtime_error(const llm_runtime *rt);
/* Appends the child's last max_lines (0: all kept) lines of stream 1
 * (stdout) or 2 (stderr), "\n"-separated, to out (caller-owned); nothing
 * before the first start. The supervisor keeps 64 lines per stream. */
void llm_runtime_tail(const llm_runtime *rt, int stream, size_t max_lines, sbuf *out);
/* The learned-footprint key of the current plan: model identity and
 * configuration key ("" before the first plan). */
const char *llm_runtime_model_key(const llm_runtime *rt);
const char *llm_runtime_config_key(const llm_runtime *rt);

/* "stopped", "starting", ... Static. */
const char *llm_rt_state_name(llm_rt_state st);

#endif
