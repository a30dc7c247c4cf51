/*
 * cmd_serve.c - `genai serve`: run the HTTP API until SIGINT or SIGTERM.
 *
 * Configuration comes from the file, the environment and the flags, in that
 * order (docs/configuration.md). The main thread starts the loop, the
 * runtime service (api/service.h: the orchestrator behind the model
 * registry, created on the loop thread) and the server, writes
 * <runtime dir>/serve.json so that `genai status` can find the daemon, then
 * waits on the loop for a signal (uv_signal, so the handler runs on the loop
 * thread like everything else). On the signal it stops the server
 * (in-flight requests are failed and drained, streams aborted upstream),
 * frees the service (the LLM and any sd-cli are stopped and reaped),
 * removes serve.json, stops the loop and exits 0.
 *
 * With no configuration and no models it starts all the same: /health
 * answers, /v1/models lists nothing, and a chat names an unknown model (404).
 */
#include "cli.h"

#include "api/service.h"
#include "core/config.h"
#include "core/events.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/paths.h"
#include "http/native.h"
#include "http/server.h"
#include "plan/budget.h"
#include "plan/llm.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai serve [--host H] [--port P] [--config F] [--api-key-file F]\n"
            "                   [--model ID]\n\n"
            "Serve the HTTP API (OpenAI-compatible and native) until SIGINT or SIGTERM.\n"
            "Models are loaded on demand by the \"model\" of each request (one LLM at a\n"
            "time; image jobs move it aside when the GPU is too small for both).\n\n"
            "  --host H          bind address (default 127.0.0.1; anything but loopback\n"
            "                    needs an API key)\n"
            "  --port P          port (default %d; 0 picks a free one)\n"
            "  --config F        configuration file (default <config dir>/genai.json)\n"
            "  --api-key-file F  require 'Authorization: Bearer KEY' with the key in F\n"
            "  --model ID        load this registered LLM at start (default: on the first\n"
            "                    request that names one)\n"
            "  --help            show this help\n\n"
            "Writes <runtime dir>/serve.json with the pid and the port while it runs.\n"
            "Keys, environment variables and defaults: docs/configuration.md.\n",
            CONFIG_DEFAULT_PORT);
}

typedef struct sig_wait {
    uv_signal_t sigint, sigterm;
    loop_completion *c;
    int signum;
    int open;
} sig_wait;

static void sig_closed(uv_handle_t *h)
{
    sig_wait *w = h->data;
    if (--w->open == 0)
        loop_complete(w->c, w->signum);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sig_wait *w = h->data;
    if (w->signum != 0)
        return;
    w->signum = signum;
    uv_close((uv_handle_t *)&w->sigint, sig_closed);
    uv_close((uv_handle_t *)&w->sigterm, sig_closed);
}

/* Loop thread: completes with the signal number once one arrived and both
 * handles are closed. */
static void wait_signal(loop *l, void *arg, loop_completion *c)
{
    sig_wait *w = arg;
    w->c = c;
    uv_signal_init(loop_uv(l), &w->sigint);
    uv_signal_init(loop_uv(l), &w->sigterm);
    w->sigint.data = w;
    w->sigterm.data = w;
    w->open = 2;
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
}

typedef struct svc_make {
    svc_opts o;
    svc *s;
    genai_error *err;
    const char *model; /* --model: loaded at start */
} svc_make;

static void preload_done(void *arg, const svc_reply *r)
{
    (void)arg;
    if (r->code != 0)
        LOG_ERROR("serve", "--model: %s", r->detail);
    else
        LOG_INFO("serve", "--model: the LLM is ready");
}

static void make_svc(loop *l, void *arg, loop_completion *c)
{
    svc_make *m = arg;
    int rc = svc_new(loop_uv(l), &m->o, &m->s, m->err);
    if (rc == 0 && m->model != NULL) {
        rc = svc_llm_start(m->s, m->model, 0, PLAN_NGL_AUTO, preload_done, NULL, NULL, m->err);
        if (rc < 0) {
            svc_free(m->s);
            m->s = NULL;
        }
    }
    loop_complete(c, rc);
}

static void free_svc(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    svc_free(arg);
    loop_complete(c, 0);
}

static void url_of(char *buf, size_t n, const char *host, unsigned port)
{
    if (strchr(host, ':') != NULL)
        snprintf(buf, n, "http://[%s]:%u", host, port);
    else
        snprintf(buf, n, "http://%s:%u", host, port);
}

/* Writes serve.json atomically (temporary file, then rename). */
static int write_state(const char *path, const char *host, unsigned port, const char *url,
                       genai_error *err)
{
    char tmp[PATHS_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return err_set(err, -ENAMETOOLONG, "%s", path);
    json_t *j = json_pack("{s:I, s:s, s:I, s:s, s:s}", "pid", (json_int_t)getpid(), "host", host,
                          "port", (json_int_t)port, "url", url, "version", genai_version());
    if (j == NULL)
        return err_set(err, -ENOMEM, "writing %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        json_decref(j);
        return err_errno(err, errno, "creating %s", tmp);
    }
    int rc = json_dumpfd(j, fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rc != 0 || write(fd, "\n", 1) != 1 || close(fd) != 0) {
        unlink(tmp);
        return err_set(err, -EIO, "writing %s", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return err_errno(err, e, "renaming %s", tmp);
    }
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"api-key-file", required_argument, NULL, 'k'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *host = NULL, *port = NULL, *config_path = NULL, *key_file = NULL, *model = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            key_file = optarg;
            break;
        case 'm':
            model = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        default:
            return cli_usage_error("serve", "unknown flag");
        }
    }
    if (optind < argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);

    genai_error err;
    genai_error_clear(&err);
    genai_config cfg;
    int rc = config_load(&cfg, config_path, &err);
    if (rc < 0) {
        cli_report("serve", rc, &err);
        return CLI_FAIL;
    }
    int status = CLI_FAIL;
    if ((host && (rc = config_set(&cfg, "host", host, "--host", &err)) < 0) ||
        (port && (rc = config_set(&cfg, "port", port, "--port", &err)) < 0) ||
        (key_file &&
         (rc = config_set(&cfg, "api_key_file", key_file, "--api-key-file", &err)) < 0)) {
        cli_report("serve", rc, &err);
        config_free(&cfg);
        return CLI_USAGE;
    }

    genai_paths paths;
    char state[PATHS_MAX];
    if ((rc = paths_resolve(&paths, &err)) < 0 ||
        (rc = paths_mkdirs(paths.runtime, 0700, &err)) < 0 ||
        (rc = paths_join(state, sizeof(state), paths.runtime, "serve.json")) < 0) {
        cli_report("serve", rc, &err);
        goto out_cfg;
    }

    /* MHD sends with MSG_NOSIGNAL; this is for any other write to a socket. */
    signal(SIGPIPE, SIG_IGN);

    http_native_init(NULL, NULL); /* log ring, uptime, POST /api/shutdown */
    metrics *m = NULL;
    events *bus = NULL;
    if ((rc = metrics_new(&m)) < 0 || (rc = events_new(&bus)) < 0) {
        err_set(&err, rc, "creating the metrics registry and the event bus");
        cli_report("serve", rc, &err);
        goto out_bus;
    }
    loop *l = NULL;
    if ((rc = loop_start(&l, &err)) < 0) {
        cli_report("serve", rc, &err);
        goto out_bus;
    }
    /* Budgets and reserves for every plan of this process; the watcher and
     * the reservation book run next to the orchestrator (docs/budgets.md). */
    plan_policy policy;
    plan_policy_from_config(&cfg, &policy);
    plan_policy_set(&policy);
    svc_make mk = {.o = {.queue_timeout_s = cfg.queue_timeout_s,
                         .queue_limit = cfg.queue_limit,
                         .bus = bus,
                         .metrics = m,
                         .share = 1,
                         .others_policy = (int)cfg.others_policy,
                         .watch_interval_ms = cfg.watch_interval_ms,
                         .watch_fast_ms = cfg.watch_fast_ms},
                   .err = &err,
                   .model = model};
    if ((rc = loop_call_wait(l, make_svc, &mk)) < 0) {
        cli_report("serve", rc, &err);
        goto out_loop;
    }
    http_server *srv = NULL;
    http_server_opts so = {.loop = l, .config = &cfg, .metrics = m, .events = bus, .app = mk.s};
    if ((rc = http_server_start(&so, &srv, &err)) < 0) {
        cli_report("serve", rc, &err);
        goto out_svc;
    }
    char url[CONFIG_HOST_MAX + 32];
    url_of(url, sizeof(url), cfg.host, http_server_port(srv));
    if ((rc = write_state(state, cfg.host, http_server_port(srv), url, &err)) < 0) {
        cli_report("serve", rc, &err);
        goto out_server;
    }
    fprintf(stderr, "genai serve: listening on %s (pid %d; state in %s)\n", url, (int)getpid(),
            state);

    sig_wait w;
    memset(&w, 0, sizeof(w));
    int sig = loop_call_wait(l, wait_signal, &w);
    if (sig > 0)
        fprintf(stderr, "genai serve: %s received, stopping\n", strsignal(sig));
    unlink(state);
    status = CLI_OK;

out_server:
    http_server_stop(srv);
out_svc:
    loop_call_wait(l, free_svc, mk.s);
out_loop:
    loop_stop(l);
out_bus:
    events_free(bus);
    metrics_free(m);
out_cfg:
    config_free(&cfg);
    return status;
}
