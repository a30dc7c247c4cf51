/* fuzz_fakegpu.c - libFuzzer entry for fakegpu_parse(), then the accounting
 * and the formatter on whatever parsed. */
#include "core/alloc.h"
#include "sys/fakegpu.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int all_alive(int32_t pid)
{
    return pid % 2 == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fakegpu_state st;
    if (fakegpu_parse((const char *)data, size, &st, NULL) != 0)
        return 0;
    fakegpu_account(&st, 123456789, all_alive);
    char *text = fakegpu_format(&st);
    if (text != NULL) {
        fakegpu_state again;
        if (fakegpu_parse(text, strlen(text), &again, NULL) == 0)
            fakegpu_state_free(&again);
        mem_free(text);
    }
    fakegpu_state_free(&st);
    return 0;
}
