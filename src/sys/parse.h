/*
 * parse.h - parsers for the Linux text files the probe reads: /proc/meminfo,
 * /proc/cpuinfo, CPU lists (/sys/devices/system/cpu/online), /proc/self/cgroup,
 * /proc/self/mountinfo and single-value cgroup files (memory.max, cpu.max, ...).
 *
 * Every parser takes (text, len), never reads past len and needs no NUL, so
 * the fuzz targets can feed it raw bytes. They are pure: no file access, no
 * global state. Formats: Documentation/filesystems/proc.rst (meminfo,
 * mountinfo), Documentation/admin-guide/cgroup-v2.rst (memory.max, cpu.max),
 * Documentation/admin-guide/cgroup-v1/memory.rst, proc(5) (cgroup).
 */
#ifndef GENAI_SYS_PARSE_H
#define GENAI_SYS_PARSE_H

#include "sys/probe.h"

#include <stddef.h>
#include <stdint.h>

/* Upper bounds on what is parsed from these files. */
#define PROBE_MAX_CPUS 65536u
#define PROBE_CGPATH_MAX 1024

/* Fills total/available/swap_total/swap_free and mem->known from meminfo
 * text; sets mem->status (ok, or the reason naming what was missing).
 * Returns 0 when MemTotal and MemAvailable were found, GENAI_ECORRUPT when
 * not (the fields that were found are still filled). */
int probe_parse_meminfo(const char *text, size_t len, probe_host_memory *mem);

/* Fills model, the flag bits, logical (number of "processor" entries) and
 * physical (distinct "physical id"/"core id" pairs; 0 when absent) from
 * cpuinfo text. Returns 0, GENAI_ECORRUPT when no processor was found, or
 * -ENOMEM. Does not touch cpu->status. */
int probe_parse_cpuinfo(const char *text, size_t len, probe_cpu *cpu);

/* Counts the CPUs in a list such as "0-3,8,10-11\n" into *count.
 * GENAI_ECORRUPT on a malformed list; *count untouched then. */
int probe_parse_cpu_list(const char *text, size_t len, uint32_t *count);

/* This process's cgroups, from /proc/self/cgroup. Empty strings when absent. */
typedef struct probe_cgroup_paths {
    char v2[PROBE_CGPATH_MAX];     /* path of the "0::" line */
    char memory[PROBE_CGPATH_MAX]; /* v1 path of the memory controller */
    char cpu[PROBE_CGPATH_MAX];    /* v1 path of the cpu controller */
    int has_v2, has_memory, has_cpu;
} probe_cgroup_paths;

/* Parses /proc/self/cgroup. GENAI_ECORRUPT on a malformed line or a path
 * longer than PROBE_CGPATH_MAX; 0 otherwise (even when nothing was found). */
int probe_parse_proc_cgroup(const char *text, size_t len, probe_cgroup_paths *out);

/* One cgroup mount from mountinfo: its root within the hierarchy and where
 * it is mounted (octal escapes decoded). */
typedef struct probe_mount {
    char root[PROBE_CGPATH_MAX];
    char point[PROBE_CGPATH_MAX];
} probe_mount;

/* Finds the first mount of fstype ("cgroup2", or "cgroup" with want_option,
 * e.g. "memory", among its super options). Returns 1 and fills *out when
 * found, 0 when not found, GENAI_ECORRUPT on a malformed line. */
int probe_parse_mountinfo(const char *text, size_t len, const char *fstype, const char *want_option,
                          probe_mount *out);

/* Parses a single-value cgroup file: "max" (v2) or a decimal byte count. A v1
 * limit of 2^62 or more (the kernel writes 9223372036854771712 for "none")
 * is unlimited too. *value = UINT64_MAX when unlimited. GENAI_ECORRUPT when
 * the text is neither. */
int probe_parse_cgroup_value(const char *text, size_t len, uint64_t *value);

/* Parses cgroup v2 cpu.max ("max 100000" or "150000 100000"). *quota =
 * UINT64_MAX when unlimited. GENAI_ECORRUPT on anything else, or period 0. */
int probe_parse_cpu_max(const char *text, size_t len, uint64_t *quota, uint64_t *period);

/* Maps a cgroup path of a hierarchy mounted at m to a path below m->point,
 * into out. Returns 0, or GENAI_ENOT_FOUND when the cgroup is outside the
 * mount's root (another namespace), -ENAMETOOLONG when it does not fit. */
int probe_cgroup_dir(const probe_mount *m, const char *cgpath, char *out, size_t outsz);

#endif
