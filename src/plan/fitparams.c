/*
 * fitparams.c - llama-fit-params argv, output parser and DRY_RUN demand
 * (see fitparams.h; formats from contracts/llama-server.md §11.2, b10470).
 *
 * The parser treats the output as untrusted text: it walks lines with an
 * explicit length, accepts only "<name> <int> <int> <int>" with optional
 * trailing blanks, caps every number and the number of rows.
 */
#include "plan/fitparams.h"

#include "core/alloc.h"
#include "proc/run.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A projection above 2^40 MiB (1 EiB) is not a real one. */
#define MIB_VALUE_MAX ((uint64_t)1 << 40)

void plan_argv_free(plan_argv *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; a->argv != NULL && i < a->argc; i++)
        mem_free(a->argv[i]);
    mem_free(a->argv);
    a->argv = NULL;
    a->argc = 0;
}

struct argv_builder {
    char **v;
    size_t n, cap;
    int failed;
};

static void push(struct argv_builder *b, const char *s)
{
    if (b->failed)
        return;
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        char **v = mem_reallocarray(b->v, cap, sizeof(*v));
        if (v == NULL) {
            b->failed = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    char *copy = mem_strdup(s);
    if (copy == NULL) {
        b->failed = 1;
        return;
    }
    b->v[b->n++] = copy;
    b->v[b->n] = NULL;
}

static void push_u(struct argv_builder *b, const char *flag, unsigned long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%llu", v);
    push(b, flag);
    push(b, num);
}

int plan_fitparams_argv(const char *binary, const char *model_path, const plan_llm_config *cfg,
                        plan_argv *out, genai_error *err)
{
    if (binary == NULL || binary[0] == '\0' || model_path == NULL || model_path[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "llama-fit-params needs a binary and a model path");

    struct argv_builder b = {0};
    push(&b, binary);
    push(&b, "-m");
    push(&b, model_path);
    push_u(&b, "-c", cfg->n_ctx);
    int unified;
    if (cfg->n_parallel == PLAN_PARALLEL_AUTO) {
        push_u(&b, "-np", PLAN_AUTO_PARALLEL_SLOTS);
        unified = cfg->kv_unified == PLAN_KVU_DEFAULT ? 1 : cfg->kv_unified != 0;
    } else {
        push_u(&b, "-np", cfg->n_parallel);
        unified = cfg->kv_unified == PLAN_KVU_DEFAULT ? 0 : cfg->kv_unified != 0;
    }
    push(&b, unified ? "-kvu" : "-no-kvu");
    push(&b, "-fa");
    push(&b, plan_fa_name(cfg->flash_attn));
    push(&b, "-ctk");
    push(&b,
         plan_cache_type_name(cfg->type_k != PLAN_CACHE_DEFAULT ? cfg->type_k : PLAN_CACHE_F16));
    push(&b, "-ctv");
    push(&b,
         plan_cache_type_name(cfg->type_v != PLAN_CACHE_DEFAULT ? cfg->type_v : PLAN_CACHE_F16));
    push_u(&b, "-b", cfg->n_batch != 0 ? cfg->n_batch : PLAN_DEFAULT_BATCH);
    push_u(&b, "-ub", cfg->n_ubatch != 0 ? cfg->n_ubatch : PLAN_DEFAULT_UBATCH);
    if (cfg->n_gpus == 0) {
        push(&b, "-dev");
        push(&b, "none");
        push_u(&b, "-ngl", 0);
    } else {
        if (cfg->n_gpu_layers != PLAN_NGL_AUTO)
            push_u(&b, "-ngl", (unsigned long long)cfg->n_gpu_layers);
        int any = 0;
        for (uint32_t i = 0; i < cfg->n_gpus && i < PLAN_MAX_GPUS; i++)
            any |= cfg->tensor_split[i] > 0.0f;
        if (any && cfg->n_gpus > 1) {
            char ts[PLAN_MAX_GPUS * 24] = "";
            size_t off = 0;
            for (uint32_t i = 0; i < cfg->n_gpus && i < PLAN_MAX_GPUS; i++) {
                int n = snprintf(ts + off, sizeof(ts) - off, "%s%g", i ? "," : "",
                                 (double)cfg->tensor_split[i]);
                if (n < 0 || (size_t)n >= sizeof(ts) - off)
                    break;
                off += (size_t)n;
            }
            push(&b, "-ts");
            push(&b, ts);
        }
    }
    if (cfg->no_kv_offload)
        push(&b, "-nkvo");
    if (cfg->swa_full)
        push(&b, "--swa-full");
    push(&b, "--fit-print");
    push(&b, "on");
    if (b.failed) {
        plan_argv tmp = {b.v, b.n};
        plan_argv_free(&tmp);
        return err_errno(err, ENOMEM, "building the llama-fit-params command line");
    }
    out->argv = b.v;
    out->argc = b.n;
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one decimal number in [s, e); 0 on success. */
static int parse_u64(const char *s, const char *e, uint64_t *out)
{
    if (s == e || e - s > 20)
        return -1;
    uint64_t v = 0;
    for (const char *c = s; c < e; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (uint64_t)(*c - '0');
        if (v > MIB_VALUE_MAX)
            return -1;
    }
    *out = v;
    return 0;
}

/* Splits [s, e) into at most 8 blank-separated fields. Returns the count. */
static int split_fields(const char *s, const char *e, const char **fs, const char **fe, int max)
{
    int n = 0;
    const char *c = s;
    while (c < e) {
        while (c < e && is_blank(*c))
            c++;
        if (c == e)
            break;
        if (n == max)
            return max + 1;
        fs[n] = c;
        while (c < e && !is_blank(*c))
            c++;
        fe[n] = c;
        n++;
    }
    return n;
}

static int parse_row(const char *s, const char *e, unsigned line, plan_fitparams_row *row,
                     genai_error *err)
{
    const char *fs[5], *fe[5];
    int n = split_fields(s, e, fs, fe, 4);
    if (n != 4)
        return err_set(err, GENAI_ECORRUPT,
                       "llama-fit-params output line %u: expected '<device> <model> <context> "
                       "<compute>', got %d fields",
                       line, n);
    size_t name_len = (size_t)(fe[0] - fs[0]);
    if (name_len >= sizeof(row->name))
        return err_set(err, GENAI_ECORRUPT, "llama-fit-params output line %u: device name too long",
                       line);
    if (parse_u64(fs[1], fe[1], &row->model_mib) < 0 ||
        parse_u64(fs[2], fe[2], &row->context_mib) < 0 ||
        parse_u64(fs[3], fe[3], &row->compute_mib) < 0)
        return err_set(err, GENAI_ECORRUPT,
                       "llama-fit-params output line %u: not an integer MiB value", line);
    memcpy(row->name, fs[0], name_len);
    row->name[name_len] = '\0';
    return 0;
}

int plan_fitparams_parse(const char *text, size_t len, plan_fitparams_result *out, genai_error *err)
{
    if (text == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no llama-fit-params output");
    if (len > PLAN_FITPARAMS_OUTPUT_MAX)
        return err_set(err, GENAI_ETOO_LARGE, "llama-fit-params output is %zu bytes", len);

    plan_fitparams_result r;
    memset(&r, 0, sizeof(r));
    int have_host = 0;
    unsigned line = 0;
    size_t off = 0;
    while (off < len) {
        const char *s = text + off;
        const char *nl = memchr(s, '\n', len - off);
        const char *e = nl != NULL ? nl : text + len;
        off = (size_t)(e - text) + (nl != NULL ? 1 : 0);
        line++;
        const char *c = s;
        while (c < e && is_blank(*c))
            c++;
        if (c == e)
            continue; /* empty line */
        if (have_host)
            return err_set(err, GENAI_ECORRUPT,
                           "llama-fit-params output line %u: text after the Host row", line);
        if (*c == '-')
            return err_set(err, GENAI_ECORRUPT,
                           "llama-fit-params output line %u: CLI arguments, not --fit-print "
                           "output",
                           line);
        plan_fitparams_row row;
        int rc = parse_row(c, e, line, &row, err);
        if (rc < 0)
            return rc;
        if (strcmp(row.name, "Host") == 0) {
            r.host = row;
            have_host = 1;
        } else {
            if (r.n_gpus == PLAN_MAX_GPUS)
                return err_set(err, GENAI_ETOO_LARGE,
                               "llama-fit-params output lists more than %d devices", PLAN_MAX_GPUS);
            r.gpu[r.n_gpus++] = row;
        }
    }
    if (!have_host)
        return err_set(err, GENAI_ECORRUPT, "llama-fit-params output has no Host row");
    *out = r;
    return 0;
}

static uint64_t field_bytes(uint64_t mib)
{
    return (mib + 1) * PLAN_MIB;
}

int plan_fitparams_demand(const plan_fitparams_result *r, const gguf_profile *p,
                          const plan_llm_config *cfg, plan_demand *out, genai_error *err)
{
    if (r->n_gpus > PLAN_MAX_GPUS)
        return err_set(err, GENAI_EBAD_ARG, "too many devices");
    plan_llm_shape s;
    int rc = plan_llm_shape_resolve(p, cfg, &s, err);
    if (rc < 0)
        return rc;

    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.tier = PLAN_TIER_DRY_RUN;
    d.n_gpus = r->n_gpus;
    int any_gpu = 0;
    for (uint32_t i = 0; i < r->n_gpus; i++) {
        const plan_fitparams_row *row = &r->gpu[i];
        if (row->model_mib + row->context_mib + row->compute_mib == 0)
            continue;
        plan_breakdown *g = &d.gpu_parts[i];
        g->weights = field_bytes(row->model_mib);
        g->kv = field_bytes(row->context_mib);
        g->compute = field_bytes(row->compute_mib);
        g->driver = PLAN_DRIVER_GPU_BYTES;
        any_gpu = 1;
    }
    if (cfg->mmproj_bytes > 0) {
        if (any_gpu)
            d.gpu_parts[0].weights += cfg->mmproj_bytes;
        else
            d.host_parts.weights += cfg->mmproj_bytes;
    }
    for (uint32_t i = 0; i < r->n_gpus; i++)
        d.gpu[i] = plan_breakdown_total(&d.gpu_parts[i]);

    plan_breakdown *h = &d.host_parts;
    uint64_t model_host = field_bytes(r->host.model_mib);
    h->weights += model_host;
    h->kv = field_bytes(r->host.context_mib);
    h->compute = field_bytes(r->host.compute_mib);
    h->output = (uint64_t)p->n_vocab * (s.n_seq ? s.n_seq : 1) * 4;
    h->prompt_cache = (uint64_t)cfg->cache_ram_mib * PLAN_MIB;
    h->runtime = PLAN_LLM_RUNTIME_ANON + PLAN_LLM_RUNTIME_FILE;
    h->driver = any_gpu ? PLAN_DRIVER_HOST_BYTES : 0;
    d.host_file = PLAN_LLM_RUNTIME_FILE + (cfg->use_mmap ? model_host : 0);
    d.host_anon = plan_breakdown_total(h) - d.host_file;
    d.host_growth = h->compute + h->prompt_cache;
    plan_demand_set_note(&d, "llama-fit-params --fit-print: Host %llu/%llu/%llu MiB + extras",
                         (unsigned long long)r->host.model_mib,
                         (unsigned long long)r->host.context_mib,
                         (unsigned long long)r->host.compute_mib);
    *out = d;
    return 0;
}

/* The last non-empty line of text (at most len bytes), for error details. */
static void last_line(const char *text, size_t len, const char **start, int *n)
{
    size_t e = len;
    while (e > 0 && (text[e - 1] == '\n' || text[e - 1] == '\r'))
        e--;
    size_t b = e;
    while (b > 0 && text[b - 1] != '\n')
        b--;
    *start = text + b;
    *n = (int)(e - b > 400 ? 400 : e - b);
}

/* Removes the argument equal to flag (a switch, no value); 1 when found. */
static int argv_drop(plan_argv *a, const char *flag)
{
    for (size_t i = 1; i < a->argc; i++) {
        if (strcmp(a->argv[i], flag) == 0) {
            mem_free(a->argv[i]);
            memmove(&a->argv[i], &a->argv[i + 1], (a->argc - i) * sizeof(a->argv[0]));
            a->argc--;
            return 1;
        }
    }
    return 0;
}

/* Replaces the value after flag with value; 0, or -ENOMEM. */
static int argv_set(plan_argv *a, const char *flag, const char *value)
{
    for (size_t i = 1; i + 1 < a->argc; i++) {
        if (strcmp(a->argv[i], flag) == 0) {
            char *v = mem_strdup(value);
            if (v == NULL)
                return -ENOMEM;
            mem_free(a->argv[i + 1]);
            a->argv[i + 1] = v;
            return 0;
        }
    }
    return 0;
}

/* Rewrites the KV layout for a tool that does not take -kvu/-no-kvu and
 * always lays the cache out per sequence. Not unified: the same thing, the
 * switch just goes. Unified: N sequences share all n_ctx cells, and every
 * one may attend to all of them, which is what one sequence of n_ctx cells
 * costs; so -np 1. Against llama-server b11669 (bench_plan_accuracy,
 * docs/planner.md): -c 8192 -np 4 unified is 345/128/34.52 MiB, and
 * llama-fit-params b11669 prints 345 128 34 for -np 1 but 345 128 28 for
 * -np 4 (81 against 285.01 with -fa off). -ENOMEM, else 0. */
static int kv_layout_without_switch(plan_argv *a)
{
    if (argv_drop(a, "-no-kvu"))
        return 0;
    if (argv_drop(a, "-kvu"))
        return argv_set(a, "-np", "1");
    return 0;
}

/* 1 when the tool refused the KV layout switch as an unknown argument:
 * b10470 took -kvu/-no-kvu, b11669 (Debian) exits 1 with "error: invalid
 * argument: -kvu" (a llama-server option only there). */
static int refused_kvu(const proc_capture *cap)
{
    if (!cap->exited || cap->exit_code != 1 || cap->err == NULL)
        return 0;
    return strstr(cap->err, "invalid argument: -kvu") != NULL ||
           strstr(cap->err, "invalid argument: -no-kvu") != NULL;
}

int plan_fitparams_run(const char *binary, const char *model_path, const gguf_profile *p,
                       const plan_llm_config *cfg, int timeout_ms, plan_demand *out,
                       genai_error *err)
{
    plan_argv a = {0};
    int rc = plan_fitparams_argv(binary, model_path, cfg, &a, err);
    if (rc < 0)
        return rc;
    proc_capture cap;
    rc = proc_run_capture((const char *const *)a.argv, timeout_ms, PLAN_FITPARAMS_OUTPUT_MAX, &cap,
                          err);
    if (rc == 0 && refused_kvu(&cap)) {
        proc_capture_free(&cap);
        rc = kv_layout_without_switch(&a);
        if (rc < 0) {
            plan_argv_free(&a);
            return err_set(err, rc, "llama-fit-params: out of memory");
        }
        rc = proc_run_capture((const char *const *)a.argv, timeout_ms, PLAN_FITPARAMS_OUTPUT_MAX,
                              &cap, err);
    }
    plan_argv_free(&a);
    if (rc < 0)
        return err_prefix(err, "llama-fit-params");
    if (!cap.exited || cap.exit_code != 0) {
        const char *line;
        int n;
        last_line(cap.err, cap.err_len, &line, &n);
        if (cap.exited)
            rc = err_set(err, GENAI_ECHILD_EXITED, "llama-fit-params exited with %d: %.*s",
                         cap.exit_code, n, line);
        else
            rc = err_set(err, GENAI_ECHILD_EXITED, "llama-fit-params killed by signal %d: %.*s",
                         cap.term_signal, n, line);
        goto out;
    }
    if (cap.truncated) {
        rc = err_set(err, GENAI_ETOO_LARGE, "llama-fit-params wrote more than %d bytes",
                     PLAN_FITPARAMS_OUTPUT_MAX);
        goto out;
    }
    plan_fitparams_result r;
    rc = plan_fitparams_parse(cap.out, cap.out_len, &r, err);
    if (rc == 0)
        rc = plan_fitparams_demand(&r, p, cfg, out, err);
out:
    proc_capture_free(&cap);
    return rc;
}
