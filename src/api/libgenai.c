/*
 * libgenai.c - the shared library's own translation unit.
 *
 * libgenai.so is genai_internal linked whole (src/api/CMakeLists.txt); a
 * CMake library target needs at least one source of its own, and this one
 * holds the compile-time checks of the public header's ABI promises.
 */
#include "genai.h"

_Static_assert(GENAI_E__LAST < GENAI_E__FIRST, "domain error range is below -30000");
_Static_assert(sizeof(genai_error) == sizeof(int) + GENAI_ERROR_DETAIL_MAX,
               "genai_error is part of the ABI: code then detail, no padding");
