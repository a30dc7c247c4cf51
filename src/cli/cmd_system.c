/*
 * cmd_system.c - `genai system`: what this machine has for running models.
 *
 * Takes one probe snapshot and prints CPU, host memory (with the cgroup
 * limit), every GPU with total/free/used and per-process use, one status line
 * per GPU provider (with the reason when it is unavailable) and the runtime
 * build that fits. --json prints the snapshot's JSON (docs/system.md).
 */
#include "cli.h"

#include "sys/probe.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai system [--json] [--help]\n\n"
                 "Show CPUs, memory (with the cgroup limit) and GPUs with their memory and\n"
                 "processes, the status of each GPU provider, and the runtime build that fits.\n\n"
                 "  --json   print the probe snapshot as JSON (sizes in bytes)\n"
                 "  --help   show this help\n\n"
                 "Environment: GENAI_NVML_LIBRARY (path of libnvidia-ml.so.1),\n"
                 "GENAI_FAKE_GPU (a fake GPU file, used instead of real GPUs; for tests).\n");
}

static const char *bytes_or(char *buf, size_t bufsz, int known, uint64_t v)
{
    if (!known)
        return "unknown";
    return cli_fmt_bytes(buf, bufsz, (unsigned long long)v);
}

static void print_count(const char *label, uint32_t n, const char *what)
{
    if (n != 0)
        printf("  %-10s %u %s\n", label, n, what);
    else
        printf("  %-10s unknown\n", label);
}

static void print_cpu(const probe_cpu *c)
{
    printf("CPU\n");
    printf("  model      %s\n", c->model[0] ? c->model : "unknown");
    print_count("logical", c->logical, "online");
    print_count("physical", c->physical, "cores");
    print_count("usable", c->usable, "(affinity and cgroup quota)");
    printf("  features  %s%s%s%s%s%s%s\n", c->avx ? " avx" : "", c->avx2 ? " avx2" : "",
           c->avx512f ? " avx512f" : "", c->fma ? " fma" : "", c->f16c ? " f16c" : "",
           c->neon ? " neon" : "",
           (c->avx | c->avx2 | c->avx512f | c->fma | c->f16c | c->neon) ? "" : " none found");
    if (!c->status.ok)
        printf("  note       %s\n", c->status.reason);
}

static void print_memory(const probe_host_memory *m)
{
    char a[32], b[32];
    printf("\nMemory\n");
    printf("  total      %s\n", bytes_or(a, sizeof(a), m->known & PROBE_MEM_TOTAL, m->total));
    printf("  available  %s (MemAvailable)\n",
           bytes_or(a, sizeof(a), m->known & PROBE_MEM_AVAILABLE, m->available));
    printf("  swap       %s free of %s\n",
           bytes_or(a, sizeof(a), m->known & PROBE_MEM_SWAP_FREE, m->swap_free),
           bytes_or(b, sizeof(b), m->known & PROBE_MEM_SWAP_TOTAL, m->swap_total));
    if (!m->cgroup.ok)
        printf("  cgroup     unknown: %s\n", m->cgroup.reason);
    else if (m->cgroup_limit == UINT64_MAX)
        printf("  cgroup     v%d, no memory limit\n", m->cgroup_version);
    else
        printf("  cgroup     v%d, limit %s, in use %s\n", m->cgroup_version,
               cli_fmt_bytes(a, sizeof(a), m->cgroup_limit),
               cli_fmt_bytes(b, sizeof(b), m->cgroup_usage));
    int eff = (m->known & PROBE_MEM_AVAILABLE) || (m->cgroup.ok && m->cgroup_limit != UINT64_MAX);
    printf("  usable     %s (for models)\n", bytes_or(a, sizeof(a), eff, m->effective_available));
    if (!m->status.ok)
        printf("  note       %s\n", m->status.reason);
}

static const char *vendor_label(enum probe_gpu_vendor v)
{
    return v == PROBE_GPU_NVIDIA ? "NVIDIA" : v == PROBE_GPU_AMD ? "AMD" : "fake";
}

static void print_gpus(const probe_snapshot *s)
{
    char a[32], b[32], c[32];
    printf("\nGPUs\n");
    if (s->n_gpus == 0)
        printf("  none found\n");
    for (uint32_t i = 0; i < s->n_gpus; i++) {
        const probe_gpu *g = &s->gpus[i];
        printf("  [%u] %s %s", i, vendor_label(g->vendor), g->name[0] ? g->name : "(no name)");
        if (g->pci_bus_id[0])
            printf(" at %s", g->pci_bus_id);
        printf("\n");
        if (g->memory.ok)
            printf("      memory  %s total, %s free, %s used\n",
                   cli_fmt_bytes(a, sizeof(a), g->total), cli_fmt_bytes(b, sizeof(b), g->free),
                   cli_fmt_bytes(c, sizeof(c), g->used));
        else
            printf("      memory  unknown: %s\n", g->memory.reason);
        for (uint32_t k = 0; k < g->n_processes; k++) {
            const probe_gpu_process *p = &g->processes[k];
            printf("      pid %-8d %s\n", (int)p->pid,
                   bytes_or(a, sizeof(a), p->used_bytes != UINT64_MAX, p->used_bytes));
        }
        if (!g->processes_status.ok)
            printf("      processes unknown: %s\n", g->processes_status.reason);
        else if (g->n_processes == 0)
            printf("      no processes\n");
    }
}

static void print_providers(const probe_snapshot *s)
{
    printf("\nProviders\n");
    for (uint32_t i = 0; i < s->n_providers; i++) {
        const probe_provider_status *p = &s->providers[i];
        printf("  %-10s ", p->name ? p->name : "?");
        if (!p->status.ok) {
            printf("unavailable: %s\n", p->status.reason);
            continue;
        }
        printf("ok");
        if (p->driver_version[0])
            printf(", driver %s", p->driver_version);
        if (p->runtime_version[0])
            printf(", CUDA %s", p->runtime_version);
        printf("\n");
    }
}

int cmd_system(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else {
            return cli_usage_error("system", "unknown argument '%s'", argv[i]);
        }
    }
    probe_snapshot snap;
    genai_error err;
    genai_error_clear(&err);
    int rc = probe_take(NULL, &snap, &err);
    if (rc < 0) {
        cli_report("system", rc, &err);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (json) {
        status = cli_print_json(stdout, probe_snapshot_json(&snap));
        if (status != CLI_OK)
            fprintf(stderr, "genai system: cannot write JSON\n");
    } else {
        print_cpu(&snap.cpu);
        print_memory(&snap.mem);
        print_gpus(&snap);
        print_providers(&snap);
        const char *why = NULL;
        const char *variant = probe_runtime_variant(&snap, &why);
        printf("\nRuntime build: %s (%s)\n", variant, why);
        if (fflush(stdout) != 0)
            status = CLI_FAIL;
    }
    probe_snapshot_free(&snap);
    return status;
}
