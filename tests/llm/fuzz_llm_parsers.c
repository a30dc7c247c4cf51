/*
 * fuzz_llm_parsers.c - one libFuzzer entry for every llama-server text
 * parser: the input is read as --version output, a build_info string, a
 * /health and a /props body, and log lines for the memory parser and the
 * crash classifier. The corpus (corpus/) holds the contract's samples.
 */
#include "core/alloc.h"
#include "llm/crash.h"
#include "llm/memlog.h"
#include "llm/status.h"
#include "llm/version.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    llm_version v;
    llm_version_parse(text, size, &v, NULL);

    char *z = mem_strndup(text, size); /* NUL-terminated copy */
    if (z == NULL)
        return 0;
    llm_build_info_parse(z, &v, NULL);

    enum llm_health h;
    llm_health_parse(200, text, size, &h, NULL);
    llm_health_parse(503, text, size, &h, NULL);
    llm_props p;
    if (llm_props_parse(text, size, &p, NULL) == 0)
        llm_props_free(&p);

    llm_footprint fp;
    llm_footprint_init(&fp);
    const char *lines[64];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || text[i] == '\n') {
            llm_memlog_feed(&fp, text + start, i - start);
            if (n < 64 && i < size) {
                z[i] = '\0';
                lines[n++] = z + start;
            }
            start = i + 1;
        }
    }
    llm_footprint_sum(&fp, 1, LLM_BUF__COUNT);
    llm_crash_classify(lines, n, NULL);
    mem_free(z);
    return 0;
}
