/*
 * cmd_pull.c - `genai pull REF`: download a model into the store.
 *
 * REF is hf://owner/repo/path/file.gguf[@rev], owner/repo[:QUANT][@rev] or an
 * https URL (http with --allow-http). A diffusion model made of several files
 * names its other files with --vae, --clip-l, --clip-g and --t5xxl (the flags
 * of `genai add`), each an hf://owner/repo/path/file or a URL; they imply
 * --kind diffusion, and the set must then be whole (store_pull).
 *
 * Progress goes to stderr: a bar on a terminal, JSON lines with --json (the
 * final model then goes to stdout as one JSON line too). Ctrl-C (SIGINT) or
 * SIGTERM sets the cancel flag; the download stops within a second and keeps
 * its partial file, and the next pull resumes it. Exit status 130 after a
 * cancel.
 */
#include "cli.h"
#include "api/shapes.h"
#include "progress.h"

#include "store/store.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int cancel_flag;

/* Only sets the flag: the download notices it on its own thread. */
static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&cancel_flag, 1);
}

static void on_progress(const store_progress *p, void *ud)
{
    cli_progress *pr = ud;
    char text[512];
    switch (p->phase) {
    case STORE_PHASE_WAITING:
        snprintf(text, sizeof(text), "waiting for another pull of %s", p->name);
        progress_note(pr, "waiting", text, json_pack("{s:s}", "name", p->name));
        break;
    case STORE_PHASE_RETRYING:
        snprintf(text, sizeof(text), "%s: %s; retrying (attempt %u)", p->name,
                 p->reason != NULL ? p->reason : "error", p->attempt);
        progress_note(pr, "retrying", text,
                      json_pack("{s:s, s:I}", "name", p->name, "attempt", (json_int_t)p->attempt));
        break;
    case STORE_PHASE_RESOLVING:
        snprintf(text, sizeof(text), "resolving %s", p->name);
        progress_note(pr, "resolving", text, json_pack("{s:s}", "name", p->name));
        break;
    default:
        progress_update(pr, store_phase_name(p->phase), p->name, p->done, p->total);
        break;
    }
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai pull REF [--name ID] [--display-name TEXT] [--kind llm|diffusion]\n"
                 "                      [--vae REF] [--clip-l REF] [--clip-g REF] [--t5xxl REF]\n"
                 "                      [--sha256 [ROLE=]HEX] [--allow-http] [--json]\n\n"
                 "REF is one of:\n"
                 "  owner/repo[:QUANT][@REV]             the GGUF file of that quantization\n"
                 "                                       (default Q4_K_M) on Hugging Face\n"
                 "  hf://owner/repo/path/file.gguf[@REV] one file (all shards if split)\n"
                 "  https://host/path/file.gguf          any URL (--sha256 HEX or a\n"
                 "                                       #sha256=HEX ending to verify it)\n\n"
                 "A diffusion model in several files (Flux: the diffusion model, CLIP-L and\n"
                 "T5-XXL encoders, a VAE) names its other files with --vae, --clip-l,\n"
                 "--clip-g and --t5xxl, each hf://owner/repo/path/file[@REV] or a URL; they\n"
                 "imply --kind diffusion. Every reference is resolved before the first\n"
                 "download, and a set missing a part its family needs is refused (the files\n"
                 "already pulled stay and are not downloaded again). Hugging Face files\n"
                 "carry their digest; a component given as a URL is verified with\n"
                 "--sha256 ROLE=HEX (e.g. --sha256 vae=...).\n\n"
                 "Downloads resume after an interruption; files are verified with SHA-256\n"
                 "before they are registered. HF_TOKEN is sent to Hugging Face only.\n"
                 "GENAI_HF_ENDPOINT overrides https://huggingface.co.\n");
}

static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (strcmp(argv[*i], name) == 0 && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* The component flags, as `genai add` spells them, in role order. */
static const struct {
    const char *flag;
    const char *role;
} components[] = {
    {"--clip-l", "clip_l"}, {"--clip-g", "clip_g"}, {"--t5xxl", "t5xxl"}, {"--vae", "vae"}};
#define N_COMPONENTS (sizeof(components) / sizeof(components[0]))

int cmd_pull(int argc, char **argv)
{
    store_pull_opts o = {0};
    store_pull_component comps[N_COMPONENTS];
    struct {
        const char *role; /* role_len bytes, not terminated */
        size_t role_len;
        const char *hex;
    } digests[N_COMPONENTS];
    size_t n_digests = 0;
    int json = 0, allow_http = 0;
    const char *kind = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        size_t c;
        for (c = 0; c < N_COMPONENTS; c++) {
            if ((v = flag_value(argc, argv, &i, components[c].flag)) != NULL)
                break;
        }
        if (v != NULL) {
            for (size_t k = 0; k < o.n_components; k++) {
                if (strcmp(comps[k].role, components[c].role) == 0)
                    return cli_usage_error("pull", "%s given twice", components[c].flag);
            }
            comps[o.n_components++] = (store_pull_component){components[c].role, v, NULL};
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--allow-http") == 0) {
            allow_http = 1;
        } else if ((v = flag_value(argc, argv, &i, "--name")) != NULL) {
            o.id = v;
        } else if ((v = flag_value(argc, argv, &i, "--display-name")) != NULL) {
            o.name = v;
        } else if ((v = flag_value(argc, argv, &i, "--kind")) != NULL) {
            kind = v;
        } else if ((v = flag_value(argc, argv, &i, "--sha256")) != NULL) {
            /* HEX for the main file, ROLE=HEX for a component's URL. */
            const char *eq = strchr(v, '=');
            if (eq == NULL) {
                if (o.sha256 != NULL)
                    return cli_usage_error("pull", "--sha256 given twice");
                o.sha256 = v;
            } else if (n_digests == N_COMPONENTS) {
                return cli_usage_error("pull", "more --sha256 ROLE=HEX than components");
            } else {
                digests[n_digests].role_len = (size_t)(eq - v);
                digests[n_digests].role = v;
                digests[n_digests++].hex = eq + 1;
            }
        } else if (argv[i][0] == '-') {
            return cli_usage_error("pull", "unknown or incomplete flag '%s'", argv[i]);
        } else if (o.ref == NULL) {
            o.ref = argv[i];
        } else {
            return cli_usage_error("pull", "one model at a time");
        }
    }
    if (o.ref == NULL)
        return cli_usage_error("pull", "what should I pull?");
    if (kind != NULL && store_kind_parse(kind, &o.kind) < 0)
        return cli_usage_error("pull", "--kind is llm or diffusion, not '%s'", kind);
    for (size_t d = 0; d < n_digests; d++) {
        store_pull_component *target = NULL;
        for (size_t k = 0; k < o.n_components; k++) {
            if (strlen(comps[k].role) == digests[d].role_len &&
                strncmp(comps[k].role, digests[d].role, digests[d].role_len) == 0)
                target = &comps[k];
        }
        if (target == NULL)
            return cli_usage_error("pull", "--sha256 %.*s=...: no component %.*s given",
                                   (int)digests[d].role_len, digests[d].role,
                                   (int)digests[d].role_len, digests[d].role);
        if (target->sha256 != NULL)
            return cli_usage_error("pull", "--sha256 %s=... given twice", target->role);
        target->sha256 = digests[d].hex;
    }
    if (o.n_components > 0) {
        /* As `genai add`: components imply diffusion; an LLM has none. */
        if (kind == NULL)
            o.kind = STORE_KIND_DIFFUSION;
        else if (o.kind != STORE_KIND_DIFFUSION)
            return cli_usage_error("pull", "components (--vae ...) belong to --kind diffusion");
        o.components = comps;
    }

    store_net net;
    store_net_defaults(&net);
    /* Asking for an http endpoint is asking for http (the tests' server). */
    net.allow_http = allow_http || strncmp(net.hf_endpoint, "http://", 7) == 0;
    net.cancel = &cancel_flag;
    cli_progress *pr = progress_new(stderr, progress_mode_for(STDERR_FILENO, json));
    net.progress = on_progress;
    net.userdata = pr;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    store *s = NULL;
    store_model m;
    genai_error e;
    genai_error_clear(&e);
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_pull(s, &net, &o, &m, &e);
    store_close(s);
    progress_finish(pr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    int status = CLI_OK;
    if (rc < 0) {
        if (json) {
            json_t *ev = json_pack("{s:s, s:s, s:s}", "event", "error", "error", genai_err_name(rc),
                                   "message", e.detail[0] ? e.detail : genai_strerror(rc));
            if (ev != NULL) {
                json_dumpf(ev, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
                fputc('\n', stdout);
                json_decref(ev);
            }
        }
        cli_report("pull", rc, &e);
        if (rc == GENAI_ENOT_FOUND && o.n_components > 0)
            fprintf(stderr, "A diffusion model's other files go with --clip-l, --clip-g, "
                            "--t5xxl and --vae.\n");
        status = rc == GENAI_ECANCELLED ? 130 : CLI_FAIL;
    } else if (json) {
        json_t *ev = json_pack("{s:s, s:b, s:o}", "event", "done", "already_present", rc == 1,
                               "model", api_model_json(&m));
        if (ev == NULL || json_dumpf(ev, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
            status = CLI_FAIL;
        fputc('\n', stdout);
        json_decref(ev);
        store_model_free(&m);
    } else {
        char size[32];
        printf("%s %s (%s, %zu file%s)\n", rc == 1 ? "already have" : "pulled", m.id,
               cli_fmt_bytes(size, sizeof(size), m.size), m.n_files, m.n_files == 1 ? "" : "s");
        store_model_free(&m);
    }
    progress_free(pr);
    return status;
}
