/* fuzz_cgroup.c - libFuzzer entry for the cgroup parsers: /proc/self/cgroup,
 * mountinfo, single values and cpu.max, all fed the same bytes. */
#include "sys/parse.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    probe_cgroup_paths p;
    if (probe_parse_proc_cgroup(text, size, &p) == 0 && p.has_v2) {
        probe_mount m;
        if (probe_parse_mountinfo(text, size, "cgroup2", NULL, &m) == 1) {
            char dir[4096];
            probe_cgroup_dir(&m, p.v2, dir, sizeof(dir));
        }
    }
    probe_mount m;
    probe_parse_mountinfo(text, size, "cgroup", "memory", &m);
    uint64_t v, q, per;
    probe_parse_cgroup_value(text, size, &v);
    probe_parse_cpu_max(text, size, &q, &per);
    return 0;
}
