/*
 * gpu_fake.c - the fake GPU provider: reads the file described in fakegpu.h
 * on every sample and reports its devices as GPUs of vendor PROBE_GPU_FAKE.
 *
 * Per-process use is what a driver would list: the held allocations of live
 * pids, summed per pid. Memory still in its release delay counts in "used" but
 * belongs to no listed process.
 */
#include "sys/fakegpu.h"
#include "sys/provider.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct fake_state {
    char *path;
} fake_state;

static int fake_sample(void *state, probe_provider_status *st, probe_gpu_list *out)
{
    fake_state *fs = state;
    fakegpu_state f;
    genai_error e;
    int rc = fakegpu_read(fs->path, &f, &e);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        probe_field_fail(&st->status, "%s", e.detail);
        return 0;
    }
    probe_field_ok(&st->status);
    snprintf(st->driver_version, sizeof(st->driver_version), "%s", f.driver_version);
    snprintf(st->runtime_version, sizeof(st->runtime_version), "%s", f.cuda_version);
    for (uint32_t i = 0; i < f.n_devices; i++) {
        const fakegpu_device *d = &f.devices[i];
        probe_gpu *g;
        if ((rc = probe_gpus_push(out, &g)) < 0)
            goto out;
        g->vendor = PROBE_GPU_FAKE;
        g->index = i;
        memcpy(g->name, d->name, sizeof(g->name));
        memcpy(g->uuid, d->uuid, sizeof(g->uuid));
        memcpy(g->pci_bus_id, d->pci_bus_id, sizeof(g->pci_bus_id));
        g->total = d->total_bytes;
        g->used = d->used_bytes < d->total_bytes ? d->used_bytes : d->total_bytes;
        g->free = d->total_bytes - g->used;
        probe_field_ok(&g->memory);
        probe_field_ok(&g->processes_status);
        for (uint32_t k = 0; k < f.n_allocs; k++) {
            const fakegpu_alloc *a = &f.allocs[k];
            if (a->device != i || a->released_at_ms != 0)
                continue;
            uint64_t have = 0;
            for (uint32_t j = 0; j < g->n_processes; j++) {
                if (g->processes[j].pid == a->pid)
                    have = g->processes[j].used_bytes;
            }
            uint64_t sum = have > UINT64_MAX - a->bytes ? UINT64_MAX - 1 : have + a->bytes;
            if ((rc = probe_gpu_add_process(g, a->pid, sum)) == -ENOMEM)
                goto out;
            rc = 0;
        }
    }
out:
    fakegpu_state_free(&f);
    return rc == -ENOMEM ? rc : 0;
}

static void fake_close(void *state)
{
    fake_state *fs = state;
    if (fs == NULL)
        return;
    mem_free(fs->path);
    mem_free(fs);
}

int probe_fake_open(const char *path, probe_provider *p, probe_provider_status *st)
{
    memset(p, 0, sizeof(*p));
    memset(st, 0, sizeof(*st));
    p->name = st->name = "fake";
    fake_state *fs = mem_calloc(1, sizeof(*fs));
    if (fs == NULL)
        return -ENOMEM;
    fs->path = mem_strdup(path);
    if (fs->path == NULL) {
        mem_free(fs);
        return -ENOMEM;
    }
    p->state = fs;
    p->sample = fake_sample;
    p->close = fake_close;
    /* The file is read on each sample; until then the status is unknown. */
    probe_field_fail(&st->status, "not sampled yet");
    return 0;
}
