/*
 * fuzz_http_json.c - libFuzzer target for the request-body guard: the depth
 * pre-scan and the bounded JSON parse must agree (a body the scan passes is
 * never deeper than the limit once parsed), and the Host check must accept
 * any bytes. The corpus is replayed by the normal test suite.
 */
/* The assertions are what this target checks: keep them in every build
 * type, NDEBUG (CMake's Release) included. */
#undef NDEBUG
#include "core/alloc.h"
#include "http/guard.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t depth_of(json_t *v)
{
    size_t max = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            size_t d = depth_of(x);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            size_t d = depth_of(x);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t limit = 16;
    json_t *v = NULL;
    if (guard_json_parse((const char *)data, size, limit, &v, NULL) == 0) {
        assert(depth_of(v) <= limit);
        json_decref(v);
    }
    char *s = mem_strndup((const char *)data, size < 300 ? size : 300);
    if (s != NULL) {
        char item[] = "name.example:1234";
        char *items[] = {item};
        config_list allowed = {items, 1};
        (void)guard_host_ok(s, 11435, &allowed);
        (void)guard_bearer_ok(s, "key");
        mem_free(s);
    }
    return 0;
}
