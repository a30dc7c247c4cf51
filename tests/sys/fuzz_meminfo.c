/* fuzz_meminfo.c - libFuzzer entry for probe_parse_meminfo(). */
#include "sys/parse.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    probe_host_memory m;
    memset(&m, 0, sizeof(m));
    probe_parse_meminfo((const char *)data, size, &m);
    return 0;
}
