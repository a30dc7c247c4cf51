/*
 * launch.c - the llama-server argv builder (see launch.h).
 *
 * The argv is built into a growable array of owned strings. Order: binary,
 * model and network, then the memory-shaping flags in the order of
 * contracts/llama-server.md §3.1, then logging, then the caller's extras.
 * Every numeric flag is formatted here, so a caller cannot smuggle a second
 * flag into a value.
 */
#include "llm/launch.h"

#include "core/alloc.h"
#include "llm/version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    uint32_t bytes32; /* ggml block bytes scaled to 32 elements */
} cache_types[LLM_CACHE__COUNT] = {
    [LLM_CACHE_F16] = {"f16", 64},       [LLM_CACHE_F32] = {"f32", 128},
    [LLM_CACHE_BF16] = {"bf16", 64},     [LLM_CACHE_Q8_0] = {"q8_0", 34},
    [LLM_CACHE_Q4_0] = {"q4_0", 18},     [LLM_CACHE_Q4_1] = {"q4_1", 20},
    [LLM_CACHE_IQ4_NL] = {"iq4_nl", 18}, [LLM_CACHE_Q5_0] = {"q5_0", 22},
    [LLM_CACHE_Q5_1] = {"q5_1", 24},
};

static const char *const load_modes[LLM_LOAD__COUNT] = {
    [LLM_LOAD_AUTO] = "auto",
    [LLM_LOAD_NONE] = "none",
    [LLM_LOAD_MMAP] = "mmap",
    [LLM_LOAD_MLOCK] = "mlock",
    [LLM_LOAD_MMAP_MLOCK] = "mmap+mlock",
    [LLM_LOAD_DIO] = "dio",
};

/* Flags genai sets itself; an extra that repeats one would silently win
 * ("only last value will be used", §3) and break the plan. */
static const char *const managed_flags[] = {
    "-m",
    "--model",
    "--host",
    "--port",
    "--api-key",
    "--api-key-file",
    "-a",
    "--alias",
    "-c",
    "--ctx-size",
    "-np",
    "--parallel",
    "-kvu",
    "--kv-unified",
    "-no-kvu",
    "--no-kv-unified",
    "-ngl",
    "--gpu-layers",
    "--n-gpu-layers",
    "-fa",
    "--flash-attn",
    "-ctk",
    "--cache-type-k",
    "-ctv",
    "--cache-type-v",
    "-lm",
    "--load-mode",
    "--mmap",
    "--no-mmap",
    "--mlock",
    "-cram",
    "--cache-ram",
    "--fit",
    "-fit",
    "-lv",
    "--verbosity",
    "-hf",
    "--hf-repo",
    "-b",
    "--batch-size",
    "-ub",
    "--ubatch-size",
};

const char *llm_cache_type_name(enum llm_cache_type t)
{
    if ((unsigned)t >= LLM_CACHE__COUNT)
        return NULL;
    return cache_types[t].name;
}

uint32_t llm_cache_type_bytes32(enum llm_cache_type t)
{
    if ((unsigned)t >= LLM_CACHE__COUNT)
        return 0;
    return cache_types[t].bytes32;
}

int llm_cache_type_parse(const char *name, enum llm_cache_type *out)
{
    if (name == NULL)
        return GENAI_EBAD_ARG;
    for (unsigned i = 0; i < LLM_CACHE__COUNT; i++) {
        if (strcmp(cache_types[i].name, name) == 0) {
            *out = (enum llm_cache_type)i;
            return 0;
        }
    }
    return GENAI_EBAD_ARG;
}

const char *llm_load_mode_name(enum llm_load_mode m)
{
    if ((unsigned)m >= LLM_LOAD__COUNT)
        return NULL;
    return load_modes[m];
}

void llm_launch_defaults(llm_launch *l)
{
    memset(l, 0, sizeof(*l));
    l->host = LLM_DEFAULT_HOST;
    l->ngl = 0;
    l->parallel = 1;
    l->kv_unified = 1;
    l->ctk = LLM_CACHE_F16;
    l->ctv = LLM_CACHE_F16;
    l->fa = LLM_FA_AUTO;
    l->load_mode = LLM_LOAD_AUTO;
    l->cache_ram_mib = 0;
    l->verbosity = 3;
}

void llm_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        mem_free(*p);
    mem_free(argv);
}

/* The array under construction; always NULL-terminated once n > 0. */
struct argv_buf {
    char **v;
    size_t n, cap;
    int failed;
};

static void add(struct argv_buf *a, const char *s)
{
    if (a->failed)
        return;
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        char **nv = mem_reallocarray(a->v, cap, sizeof(*nv));
        if (nv == NULL) {
            a->failed = 1;
            return;
        }
        a->v = nv;
        a->cap = cap;
        a->v[a->n] = NULL;
    }
    char *copy = mem_strdup(s);
    if (copy == NULL) {
        a->failed = 1;
        return;
    }
    a->v[a->n++] = copy;
    a->v[a->n] = NULL;
}

static void add_int(struct argv_buf *a, const char *flag, int64_t value)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, value);
    add(a, flag);
    add(a, num);
}

static int is_quantized(enum llm_cache_type t)
{
    return t != LLM_CACHE_F16 && t != LLM_CACHE_F32 && t != LLM_CACHE_BF16;
}

static int validate(const llm_launch *l, genai_error *err)
{
    if (l->binary == NULL || l->binary[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "launch: no llama-server binary");
    if (l->model == NULL || l->model[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG,
                       "launch: no model (without -m llama-server starts in router mode)");
    /* The server wraps ports above 65535 modulo 65536 without an error (§10). */
    if (l->port < 1 || l->port > 65535)
        return err_set(err, GENAI_EBAD_ARG, "launch: port %" PRIu32 " is not in 1..65535", l->port);
    if (l->ctx == 0)
        return err_set(err, GENAI_EBAD_ARG, "launch: context size must be chosen (> 0)");
    if (l->parallel == 0)
        return err_set(err, GENAI_EBAD_ARG, "launch: -np must be at least 1");
    if (l->ngl < LLM_NGL_ALL)
        return err_set(err, GENAI_EBAD_ARG, "launch: bad GPU layer count %" PRId32, l->ngl);
    if (llm_cache_type_name(l->ctk) == NULL || llm_cache_type_name(l->ctv) == NULL)
        return err_set(err, GENAI_EBAD_ARG, "launch: bad KV cache type");
    if ((unsigned)l->fa > LLM_FA_OFF || llm_load_mode_name(l->load_mode) == NULL)
        return err_set(err, GENAI_EBAD_ARG, "launch: bad flash-attention or load mode");
    /* Context creation fails with exit 1 otherwise (llama-server.md §3.1). */
    if (is_quantized(l->ctv) && l->fa == LLM_FA_OFF)
        return err_set(err, GENAI_EBAD_ARG,
                       "launch: a quantized V cache (%s) needs flash attention",
                       llm_cache_type_name(l->ctv));
    if (l->cache_ram_mib < -1 || l->verbosity < 0 || l->verbosity > 5 || l->threads < 0 ||
        l->sse_ping_s < -1)
        return err_set(err, GENAI_EBAD_ARG, "launch: value out of range");
    if (l->ubatch > 0 && l->batch > 0 && l->ubatch > l->batch)
        return err_set(err, GENAI_EBAD_ARG, "launch: -ub %" PRIu32 " is larger than -b %" PRIu32,
                       l->ubatch, l->batch);
    for (const char *const *e = l->extra; e != NULL && *e != NULL; e++) {
        for (size_t i = 0; i < sizeof(managed_flags) / sizeof(managed_flags[0]); i++) {
            size_t n = strlen(managed_flags[i]);
            if (strncmp(*e, managed_flags[i], n) == 0 && ((*e)[n] == '\0' || (*e)[n] == '='))
                return err_set(err, GENAI_EBAD_ARG,
                               "launch: extra flag '%s' duplicates one genai sets itself", *e);
        }
    }
    return 0;
}

static const char *fa_name(enum llm_flash_attn fa)
{
    return fa == LLM_FA_ON ? "on" : fa == LLM_FA_OFF ? "off" : "auto";
}

static void add_load_mode(struct argv_buf *a, enum llm_load_mode m, uint32_t build)
{
    if (llm_build_has(build, LLM_FEAT_LOAD_MODE)) {
        add(a, "-lm");
        add(a, llm_load_mode_name(m));
        return;
    }
    /* Older spellings, still accepted (and deprecated) at b10470. */
    switch (m) {
    case LLM_LOAD_AUTO:
        break;
    case LLM_LOAD_NONE:
        add(a, "--no-mmap");
        break;
    case LLM_LOAD_MMAP:
        add(a, "--mmap");
        break;
    case LLM_LOAD_MLOCK:
    case LLM_LOAD_MMAP_MLOCK:
        add(a, "--mlock");
        break;
    case LLM_LOAD_DIO:
        add(a, "-dio");
        break;
    case LLM_LOAD__COUNT:
        break;
    }
}

int llm_launch_argv(const llm_launch *l, uint32_t build, char ***out, genai_error *err)
{
    int rc = validate(l, err);
    if (rc < 0)
        return rc;
    struct argv_buf a = {NULL, 0, 0, 0};
    add(&a, l->binary);
    add(&a, "-m");
    add(&a, l->model);
    add(&a, "--host");
    add(&a, l->host != NULL ? l->host : LLM_DEFAULT_HOST);
    add_int(&a, "--port", l->port);
    if (l->api_key_file != NULL) {
        add(&a, "--api-key-file");
        add(&a, l->api_key_file);
    } else if (l->api_key != NULL) {
        add(&a, "--api-key");
        add(&a, l->api_key);
    }
    if (l->alias != NULL) {
        add(&a, "-a");
        add(&a, l->alias);
    }
    add_int(&a, "-c", l->ctx);
    add_int(&a, "-np", l->parallel);
    add(&a, l->kv_unified ? "-kvu" : "-no-kvu");
    if (l->ngl == LLM_NGL_ALL) {
        add(&a, "-ngl");
        add(&a, "all");
    } else {
        add_int(&a, "-ngl", l->ngl);
    }
    add(&a, "-fa");
    add(&a, fa_name(l->fa));
    add(&a, "-ctk");
    add(&a, llm_cache_type_name(l->ctk));
    add(&a, "-ctv");
    add(&a, llm_cache_type_name(l->ctv));
    if (l->batch > 0)
        add_int(&a, "-b", l->batch);
    if (l->ubatch > 0)
        add_int(&a, "-ub", l->ubatch);
    if (l->threads > 0)
        add_int(&a, "-t", l->threads);
    add_load_mode(&a, l->load_mode, build);
    add_int(&a, "-cram", l->cache_ram_mib);
    add(&a, "--fit");
    add(&a, "off");
    add_int(&a, "-lv", l->verbosity);
    if (l->sse_ping_s != 0)
        add_int(&a, "--sse-ping-interval", l->sse_ping_s);
    if (l->metrics)
        add(&a, "--metrics");
    add(&a, llm_build_has(build, LLM_FEAT_NO_UI) ? "--no-ui" : "--no-webui");
    for (const char *const *e = l->extra; e != NULL && *e != NULL; e++)
        add(&a, *e);
    if (a.failed) {
        llm_argv_free(a.v);
        return err_set(err, -ENOMEM, "launch: out of memory building argv");
    }
    *out = a.v;
    return 0;
}
