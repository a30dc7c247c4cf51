/*
 * probe_json.c - a probe snapshot as JSON, the shape `genai system --json`
 * prints and the HTTP API serves (schema: docs/system.md).
 *
 * Rules: every size is in bytes; a value that is not known is null, and the
 * object that holds it has a "reason" string saying why (null when all is
 * known). Keys keep insertion order.
 */
#include "sys/probe.h"

#include <jansson.h>

static json_t *u64_or_null(int known, uint64_t v)
{
    /* JSON integers are signed 64-bit in jansson; nothing real gets close. */
    if (!known || v > (uint64_t)INT64_MAX)
        return json_null();
    return json_integer((json_int_t)v);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *reason(const probe_field *f)
{
    return f->ok ? json_null() : json_string(f->reason);
}

/* json_object_set_new that remembers a failure in *bad. */
static void put(json_t *obj, const char *key, json_t *value, int *bad)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *bad = 1;
}

static json_t *cpu_json(const probe_cpu *c, int *bad)
{
    json_t *o = json_object();
    json_t *flags = json_object();
    if (o == NULL || flags == NULL) {
        json_decref(o);
        json_decref(flags);
        *bad = 1;
        return NULL;
    }
    put(o, "model", str_or_null(c->model), bad);
    put(o, "logical", u64_or_null(c->logical != 0, c->logical), bad);
    put(o, "physical", u64_or_null(c->physical != 0, c->physical), bad);
    put(o, "usable", u64_or_null(c->usable != 0, c->usable), bad);
    put(flags, "avx", json_boolean(c->avx), bad);
    put(flags, "avx2", json_boolean(c->avx2), bad);
    put(flags, "avx512f", json_boolean(c->avx512f), bad);
    put(flags, "fma", json_boolean(c->fma), bad);
    put(flags, "f16c", json_boolean(c->f16c), bad);
    put(flags, "neon", json_boolean(c->neon), bad);
    put(o, "flags", flags, bad);
    put(o, "reason", reason(&c->status), bad);
    return o;
}

static json_t *memory_json(const probe_host_memory *m, int *bad)
{
    json_t *o = json_object();
    json_t *cg = json_object();
    if (o == NULL || cg == NULL) {
        json_decref(o);
        json_decref(cg);
        *bad = 1;
        return NULL;
    }
    put(o, "total_bytes", u64_or_null(m->known & PROBE_MEM_TOTAL, m->total), bad);
    put(o, "available_bytes", u64_or_null(m->known & PROBE_MEM_AVAILABLE, m->available), bad);
    put(o, "swap_total_bytes", u64_or_null(m->known & PROBE_MEM_SWAP_TOTAL, m->swap_total), bad);
    put(o, "swap_free_bytes", u64_or_null(m->known & PROBE_MEM_SWAP_FREE, m->swap_free), bad);
    int eff_known =
        (m->known & PROBE_MEM_AVAILABLE) || (m->cgroup.ok && m->cgroup_limit != UINT64_MAX);
    put(o, "effective_available_bytes", u64_or_null(eff_known, m->effective_available), bad);
    put(o, "reason", reason(&m->status), bad);
    put(cg, "version", m->cgroup_version ? json_integer(m->cgroup_version) : json_null(), bad);
    put(cg, "limited", json_boolean(m->cgroup.ok && m->cgroup_limit != UINT64_MAX), bad);
    put(cg, "limit_bytes",
        u64_or_null(m->cgroup.ok && m->cgroup_limit != UINT64_MAX, m->cgroup_limit), bad);
    put(cg, "usage_bytes", u64_or_null(m->cgroup.ok, m->cgroup_usage), bad);
    put(cg, "reason", reason(&m->cgroup), bad);
    put(o, "cgroup", cg, bad);
    return o;
}

static const char *vendor_name(enum probe_gpu_vendor v)
{
    switch (v) {
    case PROBE_GPU_NVIDIA:
        return "nvidia";
    case PROBE_GPU_AMD:
        return "amd";
    case PROBE_GPU_FAKE:
        return "fake";
    }
    return "unknown";
}

static json_t *gpu_json(const probe_gpu *g, int *bad)
{
    json_t *o = json_object();
    json_t *procs = json_array();
    if (o == NULL || procs == NULL) {
        json_decref(o);
        json_decref(procs);
        *bad = 1;
        return NULL;
    }
    put(o, "vendor", json_string(vendor_name(g->vendor)), bad);
    put(o, "index", json_integer(g->index), bad);
    put(o, "name", str_or_null(g->name), bad);
    put(o, "uuid", str_or_null(g->uuid), bad);
    put(o, "pci_bus_id", str_or_null(g->pci_bus_id), bad);
    put(o, "total_bytes", u64_or_null(g->memory.ok, g->total), bad);
    put(o, "free_bytes", u64_or_null(g->memory.ok, g->free), bad);
    put(o, "used_bytes", u64_or_null(g->memory.ok, g->used), bad);
    put(o, "memory_reason", reason(&g->memory), bad);
    for (uint32_t i = 0; i < g->n_processes; i++) {
        json_t *p = json_object();
        if (p == NULL || json_array_append_new(procs, p) != 0) {
            *bad = 1;
            break;
        }
        put(p, "pid", json_integer(g->processes[i].pid), bad);
        put(p, "used_bytes",
            u64_or_null(g->processes[i].used_bytes != UINT64_MAX, g->processes[i].used_bytes), bad);
    }
    put(o, "processes", procs, bad);
    put(o, "processes_reason", reason(&g->processes_status), bad);
    return o;
}

json_t *probe_snapshot_json(const probe_snapshot *snap)
{
    int bad = 0;
    json_t *root = json_object();
    json_t *providers = json_array();
    json_t *gpus = json_array();
    json_t *runtime = json_object();
    if (root == NULL || providers == NULL || gpus == NULL || runtime == NULL) {
        json_decref(providers);
        json_decref(gpus);
        json_decref(runtime);
        json_decref(root);
        return NULL;
    }
    put(root, "taken_at_ms", json_integer((json_int_t)snap->taken_at_ms), &bad);
    put(root, "cpu", cpu_json(&snap->cpu, &bad), &bad);
    put(root, "memory", memory_json(&snap->mem, &bad), &bad);
    for (uint32_t i = 0; i < snap->n_providers && i < PROBE_MAX_PROVIDERS; i++) {
        const probe_provider_status *p = &snap->providers[i];
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(providers, o) != 0) {
            bad = 1;
            break;
        }
        put(o, "name", json_string(p->name ? p->name : "unknown"), &bad);
        put(o, "ok", json_boolean(p->status.ok), &bad);
        put(o, "driver_version", str_or_null(p->driver_version), &bad);
        put(o, "runtime_version", str_or_null(p->runtime_version), &bad);
        put(o, "reason", reason(&p->status), &bad);
    }
    put(root, "providers", providers, &bad);
    for (uint32_t i = 0; i < snap->n_gpus; i++) {
        json_t *g = gpu_json(&snap->gpus[i], &bad);
        if (g == NULL || json_array_append_new(gpus, g) != 0) {
            bad = 1;
            break;
        }
    }
    put(root, "gpus", gpus, &bad);
    const char *why = NULL;
    const char *variant = probe_runtime_variant(snap, &why);
    put(runtime, "variant", json_string(variant), &bad);
    put(runtime, "reason", json_string(why), &bad);
    put(root, "runtime", runtime, &bad);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}
