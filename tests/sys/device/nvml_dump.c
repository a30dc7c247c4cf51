/*
 * nvml_dump.c - device check: runs the real probe (CPU, memory, NVML) on a
 * machine with an NVIDIA GPU and prints what it found, one "key value" line
 * each, so check.sh can compare it with nvidia-smi. Built by check.sh with
 * plain gcc from the sys and core sources, without jansson (the fake GPU and
 * JSON parts are left out), so it runs where no project dependency is
 * installed. Not part of the CMake build.
 */
#include "sys/probe.h"
#include "sys/provider.h"

#include <stdio.h>

/* The fake provider is not linked in: GENAI_FAKE_GPU must stay unset. */
int probe_fake_open(const char *path, probe_provider *p, probe_provider_status *st)
{
    (void)path;
    (void)p;
    (void)st;
    return -1;
}

int main(void)
{
    probe_options o = {0};
    o.providers = PROBE_PROVIDER_NVML;
    probe_ctx *ctx;
    genai_error err;
    if (probe_ctx_open(&o, &ctx, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.detail);
        return 1;
    }
    for (int round = 0; round < 2; round++) {
        probe_snapshot s;
        if (probe_ctx_sample(ctx, &s, &err) != 0) {
            fprintf(stderr, "sample: %s\n", err.detail);
            return 1;
        }
        const probe_provider_status *p = &s.providers[0];
        printf("round %d\nprovider %s ok=%d driver=%s cuda=%s reason=%s\n", round, p->name,
               p->status.ok, p->driver_version, p->runtime_version, p->status.reason);
        printf("cpu model=%s logical=%u physical=%u usable=%u avx512f=%d avx2=%d\n", s.cpu.model,
               s.cpu.logical, s.cpu.physical, s.cpu.usable, s.cpu.avx512f, s.cpu.avx2);
        printf("mem total=%llu available=%llu cgroup_v=%d limit=%llu eff=%llu\n",
               (unsigned long long)s.mem.total, (unsigned long long)s.mem.available,
               s.mem.cgroup_version, (unsigned long long)s.mem.cgroup_limit,
               (unsigned long long)s.mem.effective_available);
        for (uint32_t i = 0; i < s.n_gpus; i++) {
            const probe_gpu *g = &s.gpus[i];
            printf("gpu %u name=%s uuid=%s pci=%s total=%llu free=%llu used=%llu mem_ok=%d "
                   "reason=%s procs_ok=%d procs_reason=%s n_procs=%u\n",
                   i, g->name, g->uuid, g->pci_bus_id, (unsigned long long)g->total,
                   (unsigned long long)g->free, (unsigned long long)g->used, g->memory.ok,
                   g->memory.reason, g->processes_status.ok, g->processes_status.reason,
                   g->n_processes);
            for (uint32_t k = 0; k < g->n_processes; k++)
                printf("proc gpu=%u pid=%d used=%llu\n", i, (int)g->processes[k].pid,
                       (unsigned long long)g->processes[k].used_bytes);
        }
        printf("variant %s\n", probe_runtime_variant(&s, NULL));
        probe_snapshot_free(&s);
    }
    probe_ctx_close(ctx);
    return 0;
}
