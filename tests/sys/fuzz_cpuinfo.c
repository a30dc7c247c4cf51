/* fuzz_cpuinfo.c - libFuzzer entry for probe_parse_cpuinfo() and
 * probe_parse_cpu_list(). */
#include "sys/parse.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    probe_cpu c;
    memset(&c, 0, sizeof(c));
    probe_parse_cpuinfo((const char *)data, size, &c);
    uint32_t n;
    probe_parse_cpu_list((const char *)data, size, &n);
    return 0;
}
