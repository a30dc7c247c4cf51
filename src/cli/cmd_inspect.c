/*
 * cmd_inspect.c - `genai inspect FILE`: what a GGUF model needs and how it
 * would be configured here.
 *
 * Reads the model's profile (src/gguf), takes a probe snapshot of this
 * machine, or replaces its GPUs by hypothetical ones (--gpu SIZE, repeatable:
 * total = free = SIZE), runs the planner's auto-configuration with the flags
 * the user fixed, and prints the profile, the configuration, the demand per
 * place with its breakdown, and whether (and by how much) it fits. When
 * nothing fits it shows the closest configuration and the deficit. --json
 * prints the same as one object.
 */
#include "cli.h"

#include "core/alloc.h"
#include "diffusion/family.h"
#include "gguf/profile.h"
#include "llm/runtime.h"
#include "plan/autoconf.h"
#include "sys/probe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CMD "inspect"
#define MAX_HYPO_GPUS PLAN_MAX_GPUS

struct inspect_opts {
    const char *path;
    llm_rt_config rt; /* what `genai run` would be given */
    uint64_t gpus[MAX_HYPO_GPUS];
    uint32_t n_gpus;
    int json;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai inspect FILE [--ctx N] [--ngl N|auto] [--kv TYPE] [--parallel N]\n"
            "                     [--fa on|off|auto] [--no-mmap] [--gpu SIZE ...] [--json]\n\n"
            "Show a GGUF model's shape, the memory it needs per GPU and on the host, and the\n"
            "configuration `genai run` would choose on this machine (or on hypothetical\n"
            "GPUs). genai launches llama-server without a prompt cache (-cram 0).\n"
            "Flags fix a value; what is not fixed is chosen to fit.\n\n"
            "  --ctx N          context length (default: the largest that fits)\n"
            "  --ngl N|auto     GPU layer units, llama.cpp's -ngl (default: auto)\n"
            "  --kv TYPE        KV cache type for K and V: f16, q8_0, q4_0, ... (default: f16,\n"
            "                   q8_0 when f16 does not fit)\n"
            "  --parallel N     slots sharing one unified KV cache (default: 1, as genai run)\n"
            "  --fa on|off|auto flash attention (default: auto)\n"
            "  --no-mmap        load weights into anonymous memory instead of mapping them\n"
            "  --gpu SIZE       plan for a GPU of SIZE (e.g. 8GiB, 12GB, 8192MiB) instead of\n"
            "                   this machine's GPUs; repeat for several\n"
            "  --json           print JSON (sizes in bytes)\n"
            "  --help           show this help\n");
}

/* Parses a non-negative decimal integer that fits in max. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "8GiB", "8G" (binary), "12GB" (decimal), "8192MiB", "512M", bytes. */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"K", 1ull << 10},
        {"KiB", 1ull << 10},
        {"KB", 1000ull},
        {"M", 1ull << 20},
        {"MiB", 1ull << 20},
        {"MB", 1000000ull},
        {"G", 1ull << 30},
        {"GiB", 1ull << 30},
        {"GB", 1000000000ull},
        {"T", 1ull << 40},
        {"TiB", 1ull << 40},
        {"TB", 1000000000000ull},
    };
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || v <= 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            double bytes = v * (double)units[i].mult;
            if (bytes >= 18446744073709551615.0 || bytes < 1)
                return -1;
            *out = (uint64_t)bytes;
            return 0;
        }
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct inspect_opts *o)
{
    llm_rt_config_init(&o->rt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--no-mmap") == 0) {
            o->rt.no_mmap = 1;
        } else if (strcmp(a, "--ctx") == 0) {
            if (parse_uint(v, 1u << 30, &n) < 0 || n == 0)
                return cli_usage_error(CMD, "--ctx needs a positive number, got '%s'", v ? v : "");
            o->rt.ctx = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--ngl") == 0) {
            if (v != NULL && strcmp(v, "auto") == 0)
                o->rt.ngl = PLAN_NGL_AUTO;
            else if (parse_uint(v, 100000, &n) == 0)
                o->rt.ngl = (int32_t)n;
            else
                return cli_usage_error(CMD, "--ngl needs a number or 'auto', got '%s'", v ? v : "");
            i++;
        } else if (strcmp(a, "--kv") == 0) {
            enum plan_cache_type t;
            if (plan_cache_type_parse(v, &t) < 0)
                return cli_usage_error(CMD,
                                       "--kv needs f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, "
                                       "q4_0 or iq4_nl, got '%s'",
                                       v ? v : "");
            o->rt.kv = t;
            i++;
        } else if (strcmp(a, "--parallel") == 0) {
            if (parse_uint(v, 4096, &n) < 0 || n == 0)
                return cli_usage_error(CMD, "--parallel needs a positive number, got '%s'",
                                       v ? v : "");
            o->rt.parallel = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--fa") == 0) {
            if (v != NULL && strcmp(v, "on") == 0)
                o->rt.fa = PLAN_FA_ON;
            else if (v != NULL && strcmp(v, "off") == 0)
                o->rt.fa = PLAN_FA_OFF;
            else if (v != NULL && strcmp(v, "auto") == 0)
                o->rt.fa = PLAN_FA_AUTO;
            else
                return cli_usage_error(CMD, "--fa needs on, off or auto, got '%s'", v ? v : "");
            i++;
        } else if (strcmp(a, "--gpu") == 0) {
            uint64_t size;
            if (parse_size(v, &size) < 0)
                return cli_usage_error(CMD, "--gpu needs a size such as 8GiB, got '%s'",
                                       v ? v : "");
            if (o->n_gpus == MAX_HYPO_GPUS)
                return cli_usage_error(CMD, "at most %d --gpu flags", MAX_HYPO_GPUS);
            o->gpus[o->n_gpus++] = size;
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(CMD, "unknown flag '%s'", a);
        } else if (o->path == NULL) {
            o->path = a;
        } else {
            return cli_usage_error(CMD, "only one FILE, got '%s' and '%s'", o->path, a);
        }
    }
    if (o->path == NULL)
        return cli_usage_error(CMD, "missing FILE");
    return 0;
}

/* Replaces the snapshot's GPUs by hypothetical, empty ones. */
static int use_hypothetical_gpus(probe_snapshot *snap, const struct inspect_opts *o)
{
    probe_gpu *gpus = mem_calloc(o->n_gpus, sizeof(*gpus));
    if (gpus == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < snap->n_gpus; i++)
        mem_free(snap->gpus[i].processes);
    mem_free(snap->gpus);
    for (uint32_t i = 0; i < o->n_gpus; i++) {
        probe_gpu *g = &gpus[i];
        g->vendor = PROBE_GPU_FAKE;
        g->index = i;
        snprintf(g->name, sizeof(g->name), "hypothetical GPU %u", i);
        g->total = g->free = o->gpus[i];
        g->memory.ok = 1;
        g->processes_status.ok = 1;
    }
    snap->gpus = gpus;
    snap->n_gpus = o->n_gpus;
    return 0;
}

/* "7.24 B", "181.03 M", "375.4 k": parameter counts as model cards write them. */
static const char *fmt_params(char *buf, size_t bufsz, uint64_t n)
{
    if (n >= 1000000000ull)
        snprintf(buf, bufsz, "%.2f B", (double)n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, bufsz, "%.2f M", (double)n / 1e6);
    else
        snprintf(buf, bufsz, "%.1f k", (double)n / 1e3);
    return buf;
}

static void print_profile(const gguf_profile *p)
{
    char a[32], b[32], c[32];
    printf("Model\n");
    printf("  name         %s\n", p->name[0] ? p->name : "(none)");
    printf("  architecture %s\n", p->architecture);
    printf("  file         %s in %u file%s, weights %s, %s params\n",
           cli_fmt_bytes(a, sizeof(a), p->file_bytes), p->n_split, p->n_split == 1 ? "" : "s",
           cli_fmt_bytes(b, sizeof(b), p->tensor_bytes), fmt_params(c, sizeof(c), p->n_params));
    printf("  layers       %u, embedding %u, feed-forward %u, vocabulary %u\n", p->n_layer,
           p->n_embd, p->n_ff, p->n_vocab);
    uint32_t kvh = p->n_layer && p->head_count_kv ? p->head_count_kv[0] : 0;
    printf("  attention    %u heads, %u KV heads (layer 0), head dim %u/%u\n", p->n_head, kvh,
           p->key_length, p->value_length);
    printf("  context      %u trained", p->n_ctx_train);
    if (p->n_swa)
        printf(", sliding window %u", p->n_swa);
    printf("\n");
    if (p->n_expert)
        printf("  experts      %u, %u used per token\n", p->n_expert, p->n_expert_used);
}

static void print_parts(const char *place, const plan_breakdown *b, uint64_t total)
{
    char t[32], x[32];
    printf("  %-8s %12s", place, cli_fmt_bytes(t, sizeof(t), total));
    const struct {
        const char *n;
        uint64_t v;
    } f[] = {{"weights", b->weights},
             {"kv", b->kv},
             {"compute", b->compute},
             {"output", b->output},
             {"prompt-cache", b->prompt_cache},
             {"runtime", b->runtime},
             {"driver", b->driver}};
    const char *sep = " = ";
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (f[i].v == 0)
            continue;
        printf("%s%s %s", sep, f[i].n, cli_fmt_bytes(x, sizeof(x), f[i].v));
        sep = " + ";
    }
    printf("\n");
}

static void print_choice(const plan_llm_choice *c, const gguf_profile *p, int fits,
                         const char *machine)
{
    char a[32], b[32], x[32];
    const plan_llm_shape *s = &c->shape;
    printf("\nConfiguration for %s%s\n", machine, fits ? "" : " (closest; does NOT fit)");
    printf("  -ngl %u (%u of %u layers on GPU%s) -c %u -np %u%s -ctk %s -ctv %s -fa %s -t %u%s\n",
           s->gpu_units, s->gpu_units ? s->gpu_units - 1 : 0, p->n_layer,
           s->output_device >= 0 ? " + output" : "", s->n_ctx, s->n_seq,
           s->kv_unified ? " -kvu" : " -no-kvu", plan_cache_type_name(s->type_k),
           plan_cache_type_name(s->type_v), plan_fa_name(c->cfg.flash_attn), c->cfg.threads,
           c->cfg.use_mmap ? "" : " --no-mmap");
    printf("\nDemand (%s: %s)\n", plan_tier_name(c->demand.tier), c->demand.note);
    for (uint32_t i = 0; i < c->demand.n_gpus; i++) {
        char place[16];
        snprintf(place, sizeof(place), "GPU %u", i);
        print_parts(place, &c->demand.gpu_parts[i], c->demand.gpu[i]);
    }
    print_parts("host", &c->demand.host_parts, c->demand.host_anon + c->demand.host_file);
    printf("  host anon %s (of which %s grows with use), host file-backed %s\n",
           cli_fmt_bytes(a, sizeof(a), c->demand.host_anon),
           cli_fmt_bytes(x, sizeof(x), c->demand.host_growth),
           cli_fmt_bytes(b, sizeof(b), c->demand.host_file));

    printf("\nFit\n");
    for (uint32_t i = 0; i < c->fit.n_gpus; i++) {
        printf("  GPU %u    usable %s, ", i, cli_fmt_bytes(a, sizeof(a), c->fit.gpu_usable[i]));
        if (c->fit.gpu_deficit[i])
            printf("short by %s\n", cli_fmt_bytes(b, sizeof(b), c->fit.gpu_deficit[i]));
        else
            printf("%s to spare\n",
                   cli_fmt_bytes(b, sizeof(b), (unsigned long long)c->fit.gpu_margin[i]));
    }
    printf("  host     usable %s, ", cli_fmt_bytes(a, sizeof(a), c->fit.host_usable));
    if (c->fit.host_deficit)
        printf("short by %s\n", cli_fmt_bytes(b, sizeof(b), c->fit.host_deficit));
    else
        printf("%s to spare\n",
               cli_fmt_bytes(b, sizeof(b), (unsigned long long)c->fit.host_margin));
    printf("  verdict  %s\n", fits ? "fits" : "does not fit");
}

static json_t *parts_json(const plan_breakdown *b, uint64_t total)
{
    return json_pack("{sI sI sI sI sI sI sI sI}", "total", (json_int_t)total, "weights",
                     (json_int_t)b->weights, "kv", (json_int_t)b->kv, "compute",
                     (json_int_t)b->compute, "output", (json_int_t)b->output, "prompt_cache",
                     (json_int_t)b->prompt_cache, "runtime", (json_int_t)b->runtime, "driver",
                     (json_int_t)b->driver);
}

/* json_object_set_new that remembers a NULL value (a failed json_pack). */
static void put(json_t *obj, const char *key, json_t *value, int *bad)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *bad = 1;
}

static json_t *choice_json(const struct inspect_opts *o, const gguf_profile *p,
                           const probe_snapshot *snap, const plan_llm_choice *c, int fits)
{
    const plan_llm_shape *s = &c->shape;
    json_t *root = json_object();
    json_t *gpus = json_array();
    json_t *fit_gpus = json_array();
    json_t *machine_gpus = json_array();
    if (root == NULL || gpus == NULL || fit_gpus == NULL || machine_gpus == NULL) {
        json_decref(root);
        json_decref(gpus);
        json_decref(fit_gpus);
        json_decref(machine_gpus);
        return NULL;
    }
    for (uint32_t i = 0; i < snap->n_gpus; i++)
        json_array_append_new(machine_gpus, json_pack("{ss sI sI}", "name", snap->gpus[i].name,
                                                      "total", (json_int_t)snap->gpus[i].total,
                                                      "free", (json_int_t)snap->gpus[i].free));
    for (uint32_t i = 0; i < c->demand.n_gpus; i++)
        json_array_append_new(gpus, parts_json(&c->demand.gpu_parts[i], c->demand.gpu[i]));
    for (uint32_t i = 0; i < c->fit.n_gpus; i++)
        json_array_append_new(fit_gpus,
                              json_pack("{sI sI sI}", "usable", (json_int_t)c->fit.gpu_usable[i],
                                        "margin", (json_int_t)c->fit.gpu_margin[i], "deficit",
                                        (json_int_t)c->fit.gpu_deficit[i]));
    json_t *host = parts_json(&c->demand.host_parts, c->demand.host_anon + c->demand.host_file);
    if (host != NULL) {
        json_object_set_new(host, "anon", json_integer((json_int_t)c->demand.host_anon));
        json_object_set_new(host, "file", json_integer((json_int_t)c->demand.host_file));
        json_object_set_new(host, "growth", json_integer((json_int_t)c->demand.host_growth));
    }
    int bad = 0;
    put(root, "file", json_string(o->path), &bad);
    put(root, "profile", gguf_profile_to_json(p), &bad);
    put(root, "machine",
        json_pack("{ss so sI}", "source", o->n_gpus ? "hypothetical" : "probe", "gpus",
                  machine_gpus, "host_available", (json_int_t)snap->mem.effective_available),
        &bad);
    put(root, "config",
        json_pack("{si si si sb si ss ss ss si sb si}", "n_gpu_layers", (int)s->gpu_units,
                  "repeating_layers_on_gpu", (int)(s->gpu_units ? s->gpu_units - 1 : 0), "n_ctx",
                  (int)s->n_ctx, "kv_unified", s->kv_unified, "n_parallel", (int)s->n_seq,
                  "cache_type_k", plan_cache_type_name(s->type_k), "cache_type_v",
                  plan_cache_type_name(s->type_v), "flash_attn", plan_fa_name(c->cfg.flash_attn),
                  "threads", (int)c->cfg.threads, "mmap", c->cfg.use_mmap != 0, "n_gpus",
                  (int)c->cfg.n_gpus),
        &bad);
    put(root, "demand",
        json_pack("{ss ss so so?}", "tier", plan_tier_name(c->demand.tier), "note", c->demand.note,
                  "gpus", gpus, "host", host),
        &bad);
    put(root, "fit",
        json_pack("{sb so s{sI sI sI}}", "fits", fits, "gpus", fit_gpus, "host", "usable",
                  (json_int_t)c->fit.host_usable, "margin", (json_int_t)c->fit.host_margin,
                  "deficit", (json_int_t)c->fit.host_deficit),
        &bad);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A file the LLM reader refused may be an image model (a GGUF or
 * safetensors checkpoint sd.cpp runs): then says so and where such a file
 * goes instead of the reader's complaint. 1 when it did. */
static int explain_image_model(const char *path)
{
    dm_component c = {DM_ROLE_MODEL, path};
    dm_detection d;
    if (dm_detect_paths(&c, 1, &d, NULL) < 0 || d.family == DM_FAMILY_UNKNOWN)
        return 0;
    fprintf(stderr,
            "genai inspect: %s is an image model, not an LLM: %s (%s confidence: %s)\n"
            "genai inspect reads LLMs. Make an image with it: genai image PROMPT -m %s\n"
            "or register it: genai add %s --kind diffusion, then genai show ID.\n",
            path, dm_family_display(d.family), dm_confidence_name(d.confidence), d.evidence,
            path, path);
    return 1;
}

int cmd_inspect(int argc, char **argv)
{
    struct inspect_opts o;
    memset(&o, 0, sizeof(o));
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? CLI_OK : rc;

    genai_error err;
    genai_error_clear(&err);
    gguf_profile p;
    rc = gguf_profile_load(o.path, &p, &err);
    if (rc < 0) {
        if (!explain_image_model(o.path))
            cli_report(CMD, rc, &err);
        return CLI_FAIL;
    }

    int status = CLI_FAIL;
    probe_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    rc = probe_take(NULL, &snap, &err);
    if (rc < 0) {
        cli_report(CMD, rc, &err);
        goto out_profile;
    }
    if (o.n_gpus > 0 && use_hypothetical_gpus(&snap, &o) < 0) {
        cli_report(CMD, -ENOMEM, NULL);
        goto out_snap;
    }

    plan_fit_env env;
    plan_fit_env_init(&env, &snap);
    plan_llm_config base;
    llm_rt_base_config(&o.rt, snap.n_gpus, &base);
    plan_llm_choice c;
    genai_error_clear(&err);
    rc = plan_llm_autoconfig(&p, &base, &env, 0, &c, &err);
    if (rc < 0 && rc != GENAI_ENO_FIT) {
        cli_report(CMD, rc, &err);
        goto out_snap;
    }
    int fits = rc == 0;
    char machine[64];
    if (o.n_gpus > 0)
        snprintf(machine, sizeof(machine), "%u hypothetical GPU%s", o.n_gpus,
                 o.n_gpus == 1 ? "" : "s");
    else
        snprintf(machine, sizeof(machine), "this machine (%u GPU%s)", snap.n_gpus,
                 snap.n_gpus == 1 ? "" : "s");

    if (o.json) {
        status = cli_print_json(stdout, choice_json(&o, &p, &snap, &c, fits));
    } else {
        print_profile(&p);
        print_choice(&c, &p, fits, machine);
        if (!fits)
            printf("  reason   %s\n", err.detail);
        status = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
    }

out_snap:
    probe_snapshot_free(&snap);
out_profile:
    gguf_profile_free(&p);
    return status;
}
