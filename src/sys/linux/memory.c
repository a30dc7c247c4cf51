/*
 * memory.c - the host memory part of the probe on Linux.
 *
 * /proc/meminfo gives MemTotal, MemAvailable (never MemFree: it leaves out
 * reclaimable page cache), SwapTotal and SwapFree. Then the cgroup view:
 * /proc/self/cgroup names this process's cgroup, /proc/self/mountinfo where
 * its hierarchy is mounted. cgroup v1 is used when a v1 memory controller is
 * mounted (a hybrid host keeps memory on v1); otherwise v2. From the
 * process's cgroup up to the mount point, each level with a limit gives a
 * headroom of limit - usage (v2 memory.max / memory.current, v1
 * memory.limit_in_bytes / memory.usage_in_bytes); the smallest headroom is the
 * binding one, reported as cgroup_limit / cgroup_usage, and
 * effective_available = min(MemAvailable, that headroom).
 */
#include "sys/parse.h"
#include "sys/provider.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MEMINFO_MAX (1u << 20)
#define MOUNTINFO_MAX (8u << 20)
#define SMALL_MAX 4096u

static int read_value(const char *root, const char *dir, const char *file, uint64_t *out)
{
    char rel[PATHS_MAX + 64];
    int n = snprintf(rel, sizeof(rel), "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return -ENAMETOOLONG;
    char *text = NULL;
    size_t len = 0;
    int rc = probe_read_text(root, rel, SMALL_MAX, &text, &len, NULL);
    if (rc < 0)
        return rc;
    rc = probe_parse_cgroup_value(text, len, out);
    mem_free(text);
    return rc;
}

/* Fills the cgroup fields; returns -ENOMEM or 0 (problems go to mem->cgroup). */
static int read_cgroup(const char *root, probe_host_memory *mem)
{
    char *text = NULL;
    size_t len = 0;
    genai_error e;
    probe_cgroup_paths cg;
    probe_mount m;
    int rc = probe_read_text(root, "/proc/self/cgroup", 1u << 16, &text, &len, &e);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        probe_field_fail(&mem->cgroup, "no cgroup information: %s", e.detail);
        return 0;
    }
    rc = probe_parse_proc_cgroup(text, len, &cg);
    mem_free(text);
    if (rc < 0) {
        probe_field_fail(&mem->cgroup, "/proc/self/cgroup is malformed");
        return 0;
    }
    rc = probe_read_text(root, "/proc/self/mountinfo", MOUNTINFO_MAX, &text, &len, &e);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        probe_field_fail(&mem->cgroup, "cannot find cgroup mounts: %s", e.detail);
        return 0;
    }
    int version = 0;
    const char *cgpath = NULL;
    int found = 0;
    if (cg.has_memory) {
        found = probe_parse_mountinfo(text, len, "cgroup", "memory", &m);
        if (found == 1) {
            version = 1;
            cgpath = cg.memory;
        }
    }
    if (version == 0 && cg.has_v2) {
        found = probe_parse_mountinfo(text, len, "cgroup2", NULL, &m);
        if (found == 1) {
            version = 2;
            cgpath = cg.v2;
        }
    }
    mem_free(text);
    if (found < 0) {
        probe_field_fail(&mem->cgroup, "/proc/self/mountinfo is malformed");
        return 0;
    }
    if (version == 0) {
        probe_field_fail(&mem->cgroup, "no cgroup memory controller mounted");
        return 0;
    }
    mem->cgroup_version = version;

    char dir[PATHS_MAX];
    rc = probe_cgroup_dir(&m, cgpath, dir, sizeof(dir));
    if (rc < 0) {
        probe_field_fail(&mem->cgroup, "cgroup %s is outside the mount at %s", cgpath, m.point);
        return 0;
    }
    const char *limit_file = version == 2 ? "memory.max" : "memory.limit_in_bytes";
    const char *usage_file = version == 2 ? "memory.current" : "memory.usage_in_bytes";

    uint64_t best_headroom = UINT64_MAX, best_limit = UINT64_MAX, leaf_usage = 0;
    uint64_t best_usage = 0;
    int have_leaf_usage = 0, levels = 0, bad = 0;
    for (int depth = 0;; depth++) {
        uint64_t limit, usage;
        int lrc = read_value(root, dir, limit_file, &limit);
        int urc = read_value(root, dir, usage_file, &usage);
        if (lrc == GENAI_ECORRUPT || urc == GENAI_ECORRUPT)
            bad = 1;
        if (urc == 0 && depth == 0) {
            leaf_usage = usage;
            have_leaf_usage = 1;
        }
        if (lrc == 0) {
            levels++;
            if (limit != UINT64_MAX) {
                if (urc != 0) {
                    bad = 1;
                } else {
                    uint64_t headroom = usage >= limit ? 0 : limit - usage;
                    if (headroom < best_headroom) {
                        best_headroom = headroom;
                        best_limit = limit;
                        best_usage = usage;
                    }
                }
            }
        }
        if (strcmp(dir, m.point) == 0)
            break;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < strlen(m.point))
            break;
        *slash = '\0';
    }
    if (bad) {
        probe_field_fail(&mem->cgroup, "cgroup v%d %s or %s unreadable or malformed", version,
                         limit_file, usage_file);
        return 0;
    }
    if (levels == 0 && !have_leaf_usage) {
        /* The root cgroup has neither file: nothing limits this process. */
        if (strcmp(cgpath, "/") != 0) {
            probe_field_fail(&mem->cgroup, "cgroup v%d %s not found under %s", version, limit_file,
                             m.point);
            return 0;
        }
    }
    mem->cgroup_limit = best_limit;
    mem->cgroup_usage = best_limit != UINT64_MAX ? best_usage : leaf_usage;
    probe_field_ok(&mem->cgroup);
    return 0;
}

int probe_read_memory(const char *root, probe_host_memory *mem)
{
    memset(mem, 0, sizeof(*mem));
    mem->cgroup_limit = UINT64_MAX;
    char *text = NULL;
    size_t len = 0;
    genai_error e;
    int rc = probe_read_text(root, "/proc/meminfo", MEMINFO_MAX, &text, &len, &e);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0) {
        probe_parse_meminfo(text, len, mem);
        mem_free(text);
    } else {
        probe_field_fail(&mem->status, "%s", e.detail);
    }
    rc = read_cgroup(root, mem);
    if (rc < 0)
        return rc;

    uint64_t headroom = UINT64_MAX;
    if (mem->cgroup.ok && mem->cgroup_limit != UINT64_MAX)
        headroom =
            mem->cgroup_usage >= mem->cgroup_limit ? 0 : mem->cgroup_limit - mem->cgroup_usage;
    if (mem->known & PROBE_MEM_AVAILABLE)
        mem->effective_available = mem->available < headroom ? mem->available : headroom;
    else if (headroom != UINT64_MAX)
        mem->effective_available = headroom;
    else
        mem->effective_available = 0;
    return 0;
}
