/*
 * cmd_run.c - `genai run MODEL`: start llama-server for a model with the
 * planned configuration and chat with it in the terminal.
 *
 * genai run MODEL [--prompt TEXT] [--ctx N] [--ngl N|auto] [--kv TYPE]
 *                 [--system TEXT] [--max-tokens N] [--json]
 *
 * Two threads. The loop thread (core/loop.h) owns the LLM runtime
 * (llm/runtime.h) and a SIGINT/SIGTERM handler; its events land in a small
 * shared record under a mutex. The main thread waits on that record, reads
 * stdin and streams answers with the blocking chat client (llm/chat.h).
 * Ctrl-C: the loop thread sets the interrupt flag (which also aborts an
 * answer in flight), asks the runtime to stop and wakes the main thread
 * through a pipe; the main thread then waits for the runtime to be stopped
 * (the child is always reaped) and exits 130.
 */
#include "cli.h"
#include "core/alloc.h"
#include "core/loop.h"
#include "core/paths.h"
#include "core/sbuf.h"
#include "llm/chat.h"
#include "llm/runtime.h"
#include "store/registry.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "run"

typedef struct run_opts {
    const char *model;
    const char *prompt;
    const char *system;
    int json;
    int32_t max_tokens;
    llm_rt_config cfg;
} run_opts;

/* What the loop thread tells the main thread. */
typedef struct run_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    llm_rt_state state;
    int changes;       /* events seen */
    genai_error error; /* copy of llm_runtime_error at the last FAILED */
    proc_cause cause;
    char tail[GENAI_ERROR_DETAIL_MAX];
    atomic_int interrupted;
    int wake[2]; /* loop -> main: the user interrupted */
    int tty_err;

    /* loop thread only */
    llm_runtime *rt;
    uv_signal_t sigint, sigterm;
    int signals_open;
    const run_opts *o;
    genai_error start_err;
    llm_rt_endpoint ep;
    llm_rt_plan plan;
} run_ctx;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai run MODEL [--prompt TEXT] [--ctx N] [--ngl N|auto] [--kv TYPE]\n"
            "                 [--system TEXT] [--max-tokens N] [--json]\n\n"
            "Starts llama-server for MODEL (a GGUF path, or a model id from 'genai list')\n"
            "with a configuration that fits this machine, and chats with it. With --prompt\n"
            "it answers once and exits; otherwise it reads one message per line until EOF\n"
            "or Ctrl-C, keeping the conversation. The server is stopped on exit.\n\n"
            "  --prompt TEXT   answer TEXT and exit\n"
            "  --system TEXT   system message\n"
            "  --ctx N         context size (default: the largest that fits)\n"
            "  --ngl N|auto    layers on the GPU (default: auto)\n"
            "  --kv TYPE       KV cache type: f16, q8_0, q4_0, ... (default: f16, q8_0 if needed)\n"
            "  --max-tokens N  longest answer (default: until the model stops)\n"
            "  --json          one JSON object per answer on stdout\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_args(int argc, char **argv, run_opts *o)
{
    memset(o, 0, sizeof(*o));
    llm_rt_config_init(&o->cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--prompt") == 0 || strcmp(a, "-p") == 0) {
            if (v == NULL)
                return cli_usage_error(CMD, "--prompt needs a value");
            o->prompt = v;
            i++;
        } else if (strcmp(a, "--system") == 0) {
            if (v == NULL)
                return cli_usage_error(CMD, "--system needs a value");
            o->system = v;
            i++;
        } else if (strcmp(a, "--ctx") == 0 || strcmp(a, "-c") == 0) {
            if (v == NULL || parse_u32(v, &n) < 0 || n == 0)
                return cli_usage_error(CMD, "--ctx needs a positive number");
            o->cfg.ctx = n;
            i++;
        } else if (strcmp(a, "--ngl") == 0) {
            if (v != NULL && strcmp(v, "auto") == 0)
                o->cfg.ngl = PLAN_NGL_AUTO;
            else if (v == NULL || parse_u32(v, &n) < 0 || n > 100000)
                return cli_usage_error(CMD, "--ngl needs a number of layers or 'auto'");
            else
                o->cfg.ngl = (int32_t)n;
            i++;
        } else if (strcmp(a, "--kv") == 0) {
            if (v == NULL || plan_cache_type_parse(v, &o->cfg.kv) < 0)
                return cli_usage_error(CMD, "--kv needs a cache type (f16, q8_0, q4_0, ...)");
            i++;
        } else if (strcmp(a, "--max-tokens") == 0) {
            if (v == NULL || parse_u32(v, &n) < 0 || n == 0 || n > INT32_MAX)
                return cli_usage_error(CMD, "--max-tokens needs a positive number");
            o->max_tokens = (int32_t)n;
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown flag '%s'", a);
        } else if (o->model == NULL) {
            o->model = a;
        } else {
            return cli_usage_error(CMD, "one model at a time");
        }
    }
    if (o->model == NULL)
        return cli_usage_error(CMD, "which model? (a GGUF path or an id from 'genai list')");
    return 0;
}

/* ---- loop thread --------------------------------------------------------- */

static void on_rt_event(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    run_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    c->state = ev->state;
    c->changes++;
    if (ev->state == LLM_RT_CRASHED || ev->state == LLM_RT_FAILED) {
        c->cause = ev->cause != PROC_CAUSE_NONE ? ev->cause : c->cause;
        if (ev->stderr_tail != NULL && ev->stderr_tail[0] != '\0')
            snprintf(c->tail, sizeof(c->tail), "%s", ev->stderr_tail);
    }
    if (ev->state == LLM_RT_FAILED)
        c->error = *llm_runtime_error(rt);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->tty_err && ev->state == LLM_RT_RESTARTING)
        fprintf(stderr, "genai run: llama-server died (%s); restarting\n",
                proc_cause_text(ev->cause));
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    run_ctx *c = h->data;
    atomic_store(&c->interrupted, 1);
    if (c->rt != NULL)
        llm_runtime_stop(c->rt);
    ssize_t w;
    do {
        w = write(c->wake[1], "x", 1);
    } while (w < 0 && errno == EINTR);
}

static void loop_setup(loop *l, void *arg, loop_completion *done)
{
    run_ctx *c = arg;
    uv_loop_t *uv = loop_uv(l);
    uv_signal_init(uv, &c->sigint);
    uv_signal_init(uv, &c->sigterm);
    c->sigint.data = c->sigterm.data = c;
    c->signals_open = 1;
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    int rc = llm_runtime_new(uv, &c->o->cfg, NULL, on_rt_event, c, &c->rt, &c->start_err);
    if (rc == 0) {
        rc = llm_runtime_start(c->rt, &c->start_err);
        const llm_rt_plan *pl = llm_runtime_plan(c->rt);
        if (pl != NULL)
            c->plan = *pl;
    }
    loop_complete(done, rc);
}

static void loop_endpoint(loop *l, void *arg, loop_completion *done)
{
    (void)l;
    run_ctx *c = arg;
    int rc = llm_runtime_endpoint(c->rt, &c->ep, NULL);
    const llm_rt_plan *pl = llm_runtime_plan(c->rt);
    if (pl != NULL)
        c->plan = *pl;
    loop_complete(done, rc);
}

static void loop_stop_rt(loop *l, void *arg, loop_completion *done)
{
    (void)l;
    run_ctx *c = arg;
    if (c->rt != NULL)
        llm_runtime_stop(c->rt);
    loop_complete(done, 0);
}

static void loop_teardown(loop *l, void *arg, loop_completion *done)
{
    (void)l;
    run_ctx *c = arg;
    llm_runtime_free(c->rt); /* a child still running is killed and reaped */
    c->rt = NULL;
    if (c->signals_open) {
        uv_close((uv_handle_t *)&c->sigint, NULL);
        uv_close((uv_handle_t *)&c->sigterm, NULL);
        c->signals_open = 0;
    }
    loop_complete(done, 0);
}

/* ---- main thread ----------------------------------------------------------- */

/* Waits until the runtime is in a settled state; returns it. */
static llm_rt_state wait_settled(run_ctx *c)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        llm_rt_state st = c->state;
        if (st == LLM_RT_READY || st == LLM_RT_FAILED || st == LLM_RT_STOPPED) {
            pthread_mutex_unlock(&c->mu);
            return st;
        }
        pthread_cond_wait(&c->cv, &c->mu);
    }
}

static const char *suggestion(int code, proc_cause cause, const llm_rt_plan *pl, const run_opts *o,
                              char *buf, size_t n)
{
    if (code == GENAI_ENO_FIT && pl != NULL && cause == PROC_CAUSE_NONE) {
        if (pl->suggest_ok)
            snprintf(buf, n, "try --ngl %d --ctx %u (fits now), or a smaller model",
                     (int)pl->suggest_ngl, pl->suggest_ctx);
        else if (pl->choice.cfg.n_ctx > 4096)
            snprintf(buf, n, "try --ctx 4096, fewer GPU layers (--ngl %d), or a smaller model",
                     pl->choice.cfg.n_gpu_layers > 1 ? (int)pl->choice.cfg.n_gpu_layers / 2 : 0);
        else
            snprintf(buf, n,
                     "try a smaller or more quantized model, or free memory "
                     "(close other GPU programs)");
        return buf;
    }
    switch (cause) {
    case PROC_CAUSE_OOM:
        snprintf(buf, n, "llama-server ran out of memory; try a smaller --ctx%s",
                 o->cfg.ngl != 0 ? " or fewer layers on the GPU (--ngl)" : "");
        return buf;
    case PROC_CAUSE_BAD_MODEL:
        return "check the file with 'genai inspect', or download it again";
    case PROC_CAUSE_BAD_ARG:
        return "llama-server rejected its command line: check that it is llama.cpp's "
               "llama-server, build 10470 or newer";
    case PROC_CAUSE_PORT:
        return "another program keeps taking the ports genai picks; try again";
    case PROC_CAUSE_HANG:
        return "llama-server stopped answering; see its log with GENAI_LOG_LEVEL=debug";
    case PROC_CAUSE_EXEC:
        return "check that GENAI_LLAMA_SERVER names an executable llama-server";
    default:
        break;
    }
    switch (code) {
    case GENAI_ENOT_FOUND:
        return "install llama.cpp's llama-server, or set GENAI_LLAMA_SERVER to its path";
    case GENAI_ENOT_READY:
        return "check that GENAI_LLAMA_SERVER names llama.cpp's llama-server";
    case GENAI_ECORRUPT:
    case GENAI_EUNSUPPORTED:
        return "check the file with 'genai inspect'";
    default:
        return "run again with GENAI_LOG_LEVEL=debug for details";
    }
}

/* The one readable paragraph: what failed, the cause, the child's last
 * stderr lines, a suggestion. */
static void report_failure(const char *what, int code, const genai_error *e, proc_cause cause,
                           const char *tail, const llm_rt_plan *pl, const run_opts *o)
{
    const char *detail = e != NULL && e->detail[0] != '\0' ? e->detail : genai_strerror(code);
    /* the runtime's detail already carries the stderr lines: print them once */
    const char *cut = strstr(detail, "\nlast stderr lines:\n");
    int dlen = cut != NULL ? (int)(cut - detail) : (int)strlen(detail);
    fprintf(stderr, "genai run: %s: %.*s.", what, dlen, detail);
    if (cause != PROC_CAUSE_NONE)
        fprintf(stderr, " Cause: %s.", proc_cause_text(cause));
    else if (code == GENAI_ENO_FIT)
        fprintf(stderr, " Cause: not enough memory for the planned configuration.");
    if (tail != NULL && tail[0] != '\0') {
        fprintf(stderr, " Last lines from llama-server:\n");
        const char *p = tail;
        while (*p != '\0') {
            const char *nl = strchr(p, '\n');
            int len = nl != NULL ? (int)(nl - p) : (int)strlen(p);
            if (len > 0)
                fprintf(stderr, "  | %.*s\n", len, p);
            p = nl != NULL ? nl + 1 : p + len;
        }
    } else {
        fputc('\n', stderr);
    }
    char buf[256];
    fprintf(stderr, "Suggestion: %s.\n", suggestion(code, cause, pl, o, buf, sizeof(buf)));
    if (o->json) {
        json_t *j = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", genai_err_name(code), "message",
                              detail, "cause", proc_cause_name(cause));
        cli_print_json(stdout, j);
    }
}

static void print_plan(const llm_rt_plan *pl)
{
    const plan_llm_choice *c = &pl->choice;
    char g[32], h[32];
    uint64_t gpu = plan_demand_gpu_total(&pl->demand);
    fprintf(stderr, "genai run: %u/%u layers on GPU, context %u (%u per slot), KV %s; memory: ",
            c->shape.gpu_units, pl->n_layer + 1, c->shape.n_ctx, pl->props_n_ctx,
            plan_cache_type_name(c->shape.type_k));
    if (gpu > 0)
        fprintf(stderr, "GPU %s, ", cli_fmt_bytes(g, sizeof(g), gpu));
    fprintf(stderr, "host %s (%s)\n",
            cli_fmt_bytes(h, sizeof(h), pl->demand.host_anon + pl->demand.host_file),
            plan_tier_name(pl->demand.tier));
}

typedef struct stream_out {
    int json;
    sbuf text;
} stream_out;

static int on_token(void *arg, const char *text, size_t len)
{
    stream_out *s = arg;
    if (s->json)
        return sbuf_append(&s->text, text, len) < 0;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* Reads one line from stdin, or returns NULL on EOF or an interrupt. */
static char *read_line(run_ctx *c, sbuf *line)
{
    sbuf_reset(line);
    for (;;) {
        if (atomic_load(&c->interrupted))
            return NULL;
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = c->wake[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents != 0)
            return NULL;
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return line->len > 0 ? (char *)sbuf_str(line) : NULL;
        if (ch == '\n')
            return (char *)sbuf_str(line);
        if (sbuf_append(line, &ch, 1) < 0)
            return NULL;
    }
}

/* One turn; retried on a restarted server when the old one died under it. */
static int turn(run_ctx *c, loop *l, llm_chat *chat, const run_opts *o, const char *user)
{
    for (int attempt = 0;; attempt++) {
        if (loop_call_wait(l, loop_endpoint, c) < 0) {
            llm_rt_state st = wait_settled(c);
            if (st != LLM_RT_READY)
                return -1;
            continue;
        }
        stream_out so = {.json = o->json};
        llm_chat_opts co = {.port = c->ep.port,
                            .api_key = c->ep.api_key,
                            .model = c->ep.model_id,
                            .max_tokens = o->max_tokens,
                            .cancel = &c->interrupted};
        llm_chat_result res;
        genai_error e;
        genai_error_clear(&e);
        int rc = llm_chat_send(chat, &co, user, on_token, &so, &res, &e);
        if (rc == 0) {
            if (o->json) {
                json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "model", c->ep.model_id, "content",
                                      sbuf_str(&so.text), "finish_reason", res.finish_reason,
                                      "prompt_tokens", (json_int_t)res.prompt_tokens,
                                      "completion_tokens", (json_int_t)res.completion_tokens);
                cli_print_json(stdout, j);
            } else {
                fputc('\n', stdout);
                fflush(stdout);
            }
            sbuf_free(&so.text);
            return 0;
        }
        sbuf_free(&so.text);
        if (atomic_load(&c->interrupted))
            return -1;
        if (rc == GENAI_EUNAVAILABLE && attempt < 2) {
            /* the server died under the answer: wait for the restart */
            if (!o->json)
                fputc('\n', stdout);
            if (wait_settled(c) == LLM_RT_READY) {
                if (c->tty_err)
                    fprintf(stderr, "genai run: llama-server is back; asking again\n");
                continue;
            }
            pthread_mutex_lock(&c->mu);
            genai_error fe = c->error;
            proc_cause cause = c->cause;
            pthread_mutex_unlock(&c->mu);
            report_failure("llama-server failed during the answer", fe.code, &fe, cause, c->tail,
                           NULL, o);
            return -1;
        }
        report_failure("the answer failed", rc, &e, PROC_CAUSE_NONE, NULL, NULL, o);
        return -1;
    }
}

static int resolve_model(run_opts *o, char *path, size_t pathsz, char *id, size_t idsz)
{
    struct stat st;
    if (strchr(o->model, '/') != NULL || stat(o->model, &st) == 0) {
        snprintf(path, pathsz, "%s", o->model);
        return 0;
    }
    store *s = NULL;
    store_model m;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_db_get_model(store_registry(s), o->model, &m, &e);
    if (rc < 0) {
        fprintf(stderr,
                "genai run: '%s' is neither a file nor a registered model (%s).\n"
                "Suggestion: give the path of a GGUF file, or see 'genai list'.\n",
                o->model, e.detail[0] != '\0' ? e.detail : genai_strerror(rc));
        store_close(s);
        return -1;
    }
    rc = -1;
    for (size_t i = 0; i < m.n_files; i++) {
        if (strcmp(m.files[i].role, "model") == 0) {
            snprintf(path, pathsz, "%s", m.files[i].path);
            snprintf(id, idsz, "%s", m.id);
            rc = 0;
            break;
        }
    }
    if (rc < 0)
        fprintf(stderr, "genai run: model '%s' has no GGUF model file.\n", o->model);
    store_model_free(&m);
    store_close(s);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? CLI_OK : rc;
    char path[PATHS_MAX], id[256] = "";
    if (resolve_model(&o, path, sizeof(path), id, sizeof(id)) < 0)
        return CLI_FAIL;
    o.cfg.model = path;
    o.cfg.model_id = id[0] != '\0' ? id : NULL;

    run_ctx c;
    memset(&c, 0, sizeof(c));
    c.o = &o;
    c.tty_err = cli_is_tty(2);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    int status = CLI_FAIL;
    if (pipe2(c.wake, O_CLOEXEC) != 0) {
        fprintf(stderr, "genai run: pipe: %s\n", strerror(errno));
        goto out_sync;
    }
    llm_chat *chat = NULL;
    genai_error e;
    genai_error_clear(&e);
    loop *l = NULL;
    rc = loop_start(&l, &e);
    if (rc < 0) {
        cli_report(CMD, rc, &e);
        goto out_pipe;
    }
    rc = loop_call_wait(l, loop_setup, &c);
    if (rc < 0) {
        report_failure("could not start the model", rc, &c.start_err, PROC_CAUSE_NONE, NULL,
                       c.plan.choice.shape.n_ctx != 0 ? &c.plan : NULL, &o);
        goto out_loop;
    }
    if (c.tty_err)
        fprintf(stderr, "genai run: loading %s...\n", path);
    llm_rt_state st = wait_settled(&c);
    if (st != LLM_RT_READY) {
        if (atomic_load(&c.interrupted)) {
            status = 130;
            goto out_stop;
        }
        pthread_mutex_lock(&c.mu);
        genai_error fe = c.error;
        proc_cause cause = c.cause;
        pthread_mutex_unlock(&c.mu);
        report_failure("llama-server did not start", fe.code, &fe, cause, c.tail, NULL, &o);
        goto out_stop;
    }
    if (loop_call_wait(l, loop_endpoint, &c) == 0 && c.tty_err)
        print_plan(&c.plan);
    rc = llm_chat_new(o.system, &chat, &e);
    if (rc < 0) {
        cli_report(CMD, rc, &e);
        goto out_stop;
    }
    if (o.prompt != NULL) {
        status = turn(&c, l, chat, &o, o.prompt) == 0 ? CLI_OK : CLI_FAIL;
    } else {
        sbuf line = SBUF_INIT;
        int tty_in = isatty(0);
        status = CLI_OK;
        for (;;) {
            if (tty_in) {
                fputs(">>> ", stdout);
                fflush(stdout);
            }
            const char *text = read_line(&c, &line);
            if (text == NULL)
                break;
            if (text[0] == '\0')
                continue;
            if (strcmp(text, "/bye") == 0 || strcmp(text, "/exit") == 0)
                break;
            if (turn(&c, l, chat, &o, text) < 0 && !atomic_load(&c.interrupted)) {
                llm_rt_state now = wait_settled(&c);
                if (now != LLM_RT_READY) {
                    status = CLI_FAIL;
                    break;
                }
            }
        }
        sbuf_free(&line);
    }
    if (atomic_load(&c.interrupted))
        status = 130;

out_stop:
    loop_call_wait(l, loop_stop_rt, &c);
    wait_settled(&c); /* STOPPED (or FAILED): the child is reaped */
out_loop:
    loop_call_wait(l, loop_teardown, &c);
    loop_stop(l);
    llm_chat_free(chat);
out_pipe:
    close(c.wake[0]);
    close(c.wake[1]);
out_sync:
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return status;
}
