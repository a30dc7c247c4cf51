/*
 * fuzz_png.c - libFuzzer target for the PNG container reader. The corpus in
 * tests/data/image/png-corpus/ is replayed by the normal test suite.
 */
#include "image/png.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    img_png_info info;
    genai_error err;
    if (img_png_parse(data, size, &info, &err) == 0 && (info.width == 0 || info.height == 0))
        __builtin_trap(); /* a parser invariant: success means a real size */
    return 0;
}
