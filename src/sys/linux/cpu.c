/*
 * cpu.c - the CPU part of the probe on Linux.
 *
 * Sources, each under the root prefix so tests can point them at a fixture
 * tree: /proc/cpuinfo (model, feature flags, physical/core ids),
 * /sys/devices/system/cpu/online (logical CPUs online), the per-CPU
 * topology/{physical_package_id,core_id} files when cpuinfo has no ids (ARM),
 * sched_getaffinity() on the real machine, and the cgroup CPU quota (v2
 * cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us) for the usable count.
 */
#include "sys/parse.h"
#include "sys/provider.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPUINFO_MAX (8u << 20)
#define SMALL_MAX 4096u

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int read_u64_file(const char *root, const char *rel, uint64_t *out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = probe_read_text(root, rel, SMALL_MAX, &text, &len, NULL);
    if (rc < 0)
        return rc;
    rc = probe_parse_cgroup_value(text, len, out);
    mem_free(text);
    return rc;
}

/* Distinct (package, core) pairs from sysfs topology; 0 when unreadable. */
static int topology_cores(const char *root, uint32_t *out)
{
    char dir[PATHS_MAX];
    int n = snprintf(dir, sizeof(dir), "%s/sys/devices/system/cpu", root);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return -ENAMETOOLONG;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    uint64_t *pairs = NULL;
    size_t np = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (strncmp(nm, "cpu", 3) != 0 || nm[3] < '0' || nm[3] > '9')
            continue;
        if (strspn(nm + 3, "0123456789") != strlen(nm + 3) || strlen(nm) > 12)
            continue;
        char rel[128];
        uint64_t pkg, core;
        snprintf(rel, sizeof(rel), "/sys/devices/system/cpu/%.12s/topology/physical_package_id", nm);
        if (read_u64_file(root, rel, &pkg) != 0 || pkg > UINT32_MAX)
            continue;
        snprintf(rel, sizeof(rel), "/sys/devices/system/cpu/%.12s/topology/core_id", nm);
        if (read_u64_file(root, rel, &core) != 0 || core > UINT32_MAX)
            continue;
        if (np == cap) {
            size_t nc = cap ? cap * 2 : 64;
            if (nc > PROBE_MAX_CPUS)
                break;
            uint64_t *p = mem_reallocarray(pairs, nc, sizeof(*pairs));
            if (p == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            pairs = p;
            cap = nc;
        }
        pairs[np++] = (pkg << 32) | core;
    }
    if (np == 0) {
        rc = GENAI_ENOT_FOUND;
        goto out;
    }
    qsort(pairs, np, sizeof(*pairs), cmp_u64);
    uint32_t distinct = 1;
    for (size_t i = 1; i < np; i++)
        distinct += pairs[i] != pairs[i - 1];
    *out = distinct;
out:
    closedir(d);
    mem_free(pairs);
    return rc;
}

/* CPUs in this thread's affinity mask, or 0 when the call fails. */
static uint32_t affinity_count(void)
{
    /* Grow the set until the kernel's mask fits (EINVAL means too small). */
    for (size_t ncpu = 1024; ncpu <= PROBE_MAX_CPUS; ncpu *= 4) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL)
            return 0;
        size_t sz = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(sz, set);
        if (sched_getaffinity(0, sz, set) == 0) {
            uint32_t n = (uint32_t)CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return n;
        }
        int e = errno;
        CPU_FREE(set);
        if (e != EINVAL)
            return 0;
    }
    return 0;
}

/* The tightest CPU quota in the cgroup hierarchy, in whole CPUs (rounded
 * up); 0 when there is none or it cannot be read. */
static uint32_t cgroup_cpu_limit(const char *root)
{
    char *text = NULL;
    size_t len = 0;
    probe_cgroup_paths cg;
    probe_mount m;
    uint32_t best = 0;
    if (probe_read_text(root, "/proc/self/cgroup", 1u << 16, &text, &len, NULL) != 0)
        return 0;
    int rc = probe_parse_proc_cgroup(text, len, &cg);
    mem_free(text);
    if (rc != 0)
        return 0;
    int v1 = 0;
    if (probe_read_text(root, "/proc/self/mountinfo", CPUINFO_MAX, &text, &len, NULL) != 0)
        return 0;
    if (cg.has_cpu && probe_parse_mountinfo(text, len, "cgroup", "cpu", &m) == 1)
        v1 = 1;
    else if (!(cg.has_v2 && probe_parse_mountinfo(text, len, "cgroup2", NULL, &m) == 1)) {
        mem_free(text);
        return 0;
    }
    mem_free(text);
    char dir[PATHS_MAX];
    if (probe_cgroup_dir(&m, v1 ? cg.cpu : cg.v2, dir, sizeof(dir)) != 0)
        return 0;
    for (;;) {
        uint64_t quota = UINT64_MAX, period = 0;
        char rel[PATHS_MAX + 32];
        if (v1) {
            uint64_t q, p;
            snprintf(rel, sizeof(rel), "%s/cpu.cfs_quota_us", dir);
            /* "-1" fails the unsigned parse and means "no quota". */
            if (read_u64_file(root, rel, &q) == 0) {
                snprintf(rel, sizeof(rel), "%s/cpu.cfs_period_us", dir);
                if (read_u64_file(root, rel, &p) == 0 && p > 0) {
                    quota = q;
                    period = p;
                }
            }
        } else {
            snprintf(rel, sizeof(rel), "%s/cpu.max", dir);
            if (probe_read_text(root, rel, SMALL_MAX, &text, &len, NULL) == 0) {
                uint64_t q, p;
                if (probe_parse_cpu_max(text, len, &q, &p) == 0) {
                    quota = q;
                    period = p;
                }
                mem_free(text);
            }
        }
        if (quota != UINT64_MAX && period > 0) {
            uint64_t cpus = quota / period + (quota % period != 0);
            if (cpus == 0)
                cpus = 1;
            if (cpus > PROBE_MAX_CPUS)
                cpus = PROBE_MAX_CPUS;
            if (best == 0 || cpus < best)
                best = (uint32_t)cpus;
        }
        if (strcmp(dir, m.point) == 0)
            break;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < strlen(m.point))
            break;
        *slash = '\0';
    }
    return best;
}

int probe_read_cpu(const char *root, int real_machine, probe_cpu *cpu)
{
    char reason[PROBE_REASON_MAX] = "";

    memset(cpu, 0, sizeof(*cpu));
    char *text = NULL;
    size_t len = 0;
    genai_error e;
    int rc = probe_read_text(root, "/proc/cpuinfo", CPUINFO_MAX, &text, &len, &e);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0) {
        rc = probe_parse_cpuinfo(text, len, cpu);
        mem_free(text);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0)
            probe_reason_add(reason, sizeof(reason), "cpuinfo lists no processor");
    } else {
        probe_reason_add(reason, sizeof(reason), "%s", e.detail);
    }
    if (cpu->model[0] == '\0')
        probe_reason_add(reason, sizeof(reason), "CPU model unknown");

    uint32_t online;
    rc = probe_read_text(root, "/sys/devices/system/cpu/online", SMALL_MAX, &text, &len, NULL);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0) {
        rc = probe_parse_cpu_list(text, len, &online);
        mem_free(text);
        if (rc == 0)
            cpu->logical = online;
    }
    if (cpu->logical == 0)
        probe_reason_add(reason, sizeof(reason), "online CPU count unknown");

    if (cpu->physical == 0) {
        uint32_t cores = 0;
        rc = topology_cores(root, &cores);
        if (rc == -ENOMEM)
            return rc;
        if (rc == 0)
            cpu->physical = cores;
        else
            probe_reason_add(reason, sizeof(reason), "physical core count unknown (no core ids)");
    }

    uint32_t usable = real_machine ? affinity_count() : 0;
    if (usable == 0)
        usable = cpu->logical;
    uint32_t quota = cgroup_cpu_limit(root);
    if (quota != 0 && (usable == 0 || quota < usable))
        usable = quota;
    cpu->usable = usable;

    if (reason[0] == '\0')
        probe_field_ok(&cpu->status);
    else
        probe_field_fail(&cpu->status, "%s", reason);
    return 0;
}
