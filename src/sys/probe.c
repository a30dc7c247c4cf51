/*
 * probe.c - the probe context: reads the CPU and opens the GPU providers
 * once, then takes snapshots of host memory and GPUs on demand (see probe.h).
 * The CPU part (model, features, counts, affinity, quota) is read when the
 * context opens; open a new context to see a CPU hot-plug or a changed quota.
 *
 * Provider choice: when a fake GPU file is configured (option or env
 * GENAI_FAKE_GPU) only the fake provider runs, so tests behave the same on a
 * machine with a real GPU. Otherwise NVML (dlopen, no build-time CUDA) and the
 * AMD sysfs reader run side by side, each reporting its own status.
 */
#include "sys/probe.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "sys/provider.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_NVML "libnvidia-ml.so.1"

struct probe_ctx {
    char *root;
    int real_machine;
    probe_cpu cpu; /* read once: CPUs and their features do not change under us */
    probe_provider providers[PROBE_MAX_PROVIDERS];
    probe_provider_status status[PROBE_MAX_PROVIDERS];
    uint32_t n_providers;
};

/* ---- small helpers shared by the providers ---------------------------- */

void probe_field_fail(probe_field *f, const char *fmt, ...)
{
    va_list ap;
    f->ok = 0;
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
}

void probe_field_ok(probe_field *f)
{
    f->ok = 1;
    f->reason[0] = '\0';
}

void probe_reason_add(char *buf, size_t size, const char *fmt, ...)
{
    size_t off = strnlen(buf, size);
    if (off + 1 >= size)
        return;
    if (off > 0) {
        int n = snprintf(buf + off, size - off, "; ");
        if (n < 0 || (size_t)n >= size - off)
            return;
        off += (size_t)n;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + off, size - off, fmt, ap);
    va_end(ap);
}

int probe_read_text(const char *root, const char *rel, size_t max_bytes, char **out, size_t *len,
                    genai_error *err)
{
    char path[PATHS_MAX];
    int n = snprintf(path, sizeof(path), "%s%s", root ? root : "", rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return err_set(err, -ENAMETOOLONG, "path too long: %s%s", root ? root : "", rel);
    return paths_read_file(path, max_bytes, out, len, err);
}

int probe_gpus_push(probe_gpu_list *l, probe_gpu **slot)
{
    if (l->n >= PROBE_MAX_GPUS)
        return GENAI_ETOO_LARGE;
    if (l->n == l->cap) {
        uint32_t nc = l->cap ? l->cap * 2 : 4;
        probe_gpu *v = mem_reallocarray(l->v, nc, sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    *slot = &l->v[l->n++];
    memset(*slot, 0, sizeof(**slot));
    return 0;
}

void probe_gpus_free(probe_gpu_list *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        mem_free(l->v[i].processes);
    mem_free(l->v);
    memset(l, 0, sizeof(*l));
}

int probe_gpu_add_process(probe_gpu *g, int32_t pid, uint64_t bytes)
{
    for (uint32_t i = 0; i < g->n_processes; i++) {
        probe_gpu_process *p = &g->processes[i];
        if (p->pid != pid)
            continue;
        if (p->used_bytes == UINT64_MAX || (bytes != UINT64_MAX && bytes > p->used_bytes))
            p->used_bytes = bytes;
        return 0;
    }
    if (g->n_processes >= PROBE_MAX_GPU_PROCESSES)
        return GENAI_ETOO_LARGE;
    probe_gpu_process *v =
        mem_reallocarray(g->processes, (size_t)g->n_processes + 1, sizeof(*g->processes));
    if (v == NULL)
        return -ENOMEM;
    g->processes = v;
    g->processes[g->n_processes++] = (probe_gpu_process){pid, bytes};
    return 0;
}

void probe_snapshot_free(probe_snapshot *snap)
{
    if (snap == NULL)
        return;
    for (uint32_t i = 0; i < snap->n_gpus; i++)
        mem_free(snap->gpus[i].processes);
    mem_free(snap->gpus);
    memset(snap, 0, sizeof(*snap));
}

/* ---- the context ------------------------------------------------------ */

static const char *pick(const char *opt, const char *env_name, int ignore_env)
{
    if (opt != NULL)
        return opt;
    if (ignore_env)
        return NULL;
    const char *v = getenv(env_name);
    return v;
}

int probe_ctx_open(const probe_options *opts, probe_ctx **out, genai_error *err)
{
    probe_options none;
    if (opts == NULL) {
        memset(&none, 0, sizeof(none));
        opts = &none;
    }
    probe_ctx *ctx = mem_calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return err_set(err, -ENOMEM, "probe context");
    const char *root = opts->root ? opts->root : "";
    ctx->root = mem_strdup(root);
    if (ctx->root == NULL) {
        mem_free(ctx);
        return err_set(err, -ENOMEM, "probe context");
    }
    ctx->real_machine = root[0] == '\0';
    int rc = probe_read_cpu(ctx->root, ctx->real_machine, &ctx->cpu);
    if (rc < 0)
        goto fail;
    unsigned want = opts->providers ? opts->providers : PROBE_PROVIDER_ALL;
    const char *fake = pick(opts->fake_gpu_path, "GENAI_FAKE_GPU", opts->ignore_env);
    if (fake != NULL && fake[0] != '\0') {
        rc = probe_fake_open(fake, &ctx->providers[0], &ctx->status[0]);
        if (rc < 0)
            goto fail;
        ctx->n_providers = 1;
    } else {
        if (want & PROBE_PROVIDER_NVML) {
            const char *lib = pick(opts->nvml_path, "GENAI_NVML_LIBRARY", opts->ignore_env);
            if (lib == NULL || lib[0] == '\0')
                lib = DEFAULT_NVML;
            rc = probe_nvml_open(lib, &ctx->providers[ctx->n_providers],
                                 &ctx->status[ctx->n_providers]);
            if (rc < 0)
                goto fail;
            ctx->n_providers++;
        }
        if (want & PROBE_PROVIDER_AMD) {
            rc = probe_amd_open(root, &ctx->providers[ctx->n_providers],
                                &ctx->status[ctx->n_providers]);
            if (rc < 0)
                goto fail;
            ctx->n_providers++;
        }
    }
    *out = ctx;
    return 0;
fail:
    probe_ctx_close(ctx);
    return err_set(err, rc, "opening the GPU providers");
}

void probe_ctx_close(probe_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (uint32_t i = 0; i < ctx->n_providers; i++) {
        if (ctx->providers[i].close != NULL)
            ctx->providers[i].close(ctx->providers[i].state);
    }
    mem_free(ctx->root);
    mem_free(ctx);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int probe_ctx_sample(probe_ctx *ctx, probe_snapshot *out, genai_error *err)
{
    probe_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    probe_gpu_list gpus = {NULL, 0, 0};
    int rc;
    snap.taken_at_ms = monotonic_ms();
    snap.cpu = ctx->cpu;
    if ((rc = probe_read_memory(ctx->root, &snap.mem)) < 0)
        goto fail;
    for (uint32_t i = 0; i < ctx->n_providers; i++) {
        probe_provider *p = &ctx->providers[i];
        if (p->sample != NULL && (rc = p->sample(p->state, &ctx->status[i], &gpus)) < 0)
            goto fail;
        snap.providers[i] = ctx->status[i];
    }
    snap.n_providers = ctx->n_providers;
    snap.gpus = gpus.v;
    snap.n_gpus = gpus.n;
    *out = snap;
    return 0;
fail:
    probe_gpus_free(&gpus);
    return err_set(err, rc, "probing the machine");
}

int probe_take(const probe_options *opts, probe_snapshot *out, genai_error *err)
{
    probe_ctx *ctx;
    int rc = probe_ctx_open(opts, &ctx, err);
    if (rc < 0)
        return rc;
    rc = probe_ctx_sample(ctx, out, err);
    probe_ctx_close(ctx);
    return rc;
}

/* ---- what to run ------------------------------------------------------ */

const char *probe_runtime_variant(const probe_snapshot *snap, const char **why)
{
    const char *because;
    const char *variant;
    int nvidia = 0, amd = 0;
    for (uint32_t i = 0; i < snap->n_gpus; i++) {
        nvidia |=
            snap->gpus[i].vendor == PROBE_GPU_NVIDIA || snap->gpus[i].vendor == PROBE_GPU_FAKE;
        amd |= snap->gpus[i].vendor == PROBE_GPU_AMD;
    }
    const probe_cpu *c = &snap->cpu;
    if (nvidia) {
        variant = "cuda";
        because = "an NVIDIA GPU is present (NVML)";
    } else if (amd) {
        variant = "rocm";
        because = "an AMD GPU is present (amdgpu sysfs)";
    } else if (c->avx512f) {
        variant = "cpu-avx512";
        because = "no supported GPU; the CPU has AVX-512F";
    } else if (c->avx2) {
        variant = "cpu-avx2";
        because = "no supported GPU; the CPU has AVX2";
    } else if (c->avx) {
        variant = "cpu-avx";
        because = "no supported GPU; the CPU has AVX";
    } else if (c->neon) {
        variant = "arm-neon";
        because = "no supported GPU; the CPU has ARM NEON (ASIMD)";
    } else {
        variant = "cpu";
        because = c->status.ok ? "no supported GPU and no vector extension"
                               : "no supported GPU and the CPU features are unknown";
    }
    if (why != NULL)
        *why = because;
    return variant;
}

int probe_options_own(probe_options_owned *dst, const probe_options *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src == NULL)
        return 0;
    dst->opts = *src;
    dst->root = src->root != NULL ? mem_strdup(src->root) : NULL;
    dst->nvml_path = src->nvml_path != NULL ? mem_strdup(src->nvml_path) : NULL;
    dst->fake_gpu_path = src->fake_gpu_path != NULL ? mem_strdup(src->fake_gpu_path) : NULL;
    if ((src->root != NULL && dst->root == NULL) ||
        (src->nvml_path != NULL && dst->nvml_path == NULL) ||
        (src->fake_gpu_path != NULL && dst->fake_gpu_path == NULL)) {
        probe_options_owned_free(dst);
        return -ENOMEM;
    }
    dst->opts.root = dst->root;
    dst->opts.nvml_path = dst->nvml_path;
    dst->opts.fake_gpu_path = dst->fake_gpu_path;
    return 0;
}

void probe_options_owned_free(probe_options_owned *o)
{
    if (o == NULL)
        return;
    mem_free(o->root);
    mem_free(o->nvml_path);
    mem_free(o->fake_gpu_path);
    memset(o, 0, sizeof(*o));
}
