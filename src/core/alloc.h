/*
 * alloc.h - the one allocation funnel.
 *
 * Every allocation in genai goes through these functions so that tests can
 * make the N-th allocation fail (mem_fail_after) and check that each path
 * cleans up and reports -ENOMEM. mem_calloc and mem_reallocarray check the
 * count x size product for overflow. mem_free accepts NULL.
 */
#ifndef GENAI_CORE_ALLOC_H
#define GENAI_CORE_ALLOC_H

#include <stddef.h>

void *mem_alloc(size_t size);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *ptr, size_t size);
/* realloc to count * size bytes; NULL (ptr untouched) on overflow or failure. */
void *mem_reallocarray(void *ptr, size_t count, size_t size);
/* Copy of s (NULL when s is NULL or on failure); free with mem_free. */
char *mem_strdup(const char *s);
/* Copy of the first n bytes of s plus a NUL; free with mem_free. */
char *mem_strndup(const char *s, size_t n);
void mem_free(void *ptr);

/* Test hook: the n-th allocation from now fails (n = 1: the next one), and
 * every later one too while 'sticky' is non-zero. n = 0 disables failures. */
void mem_fail_after(unsigned long n, int sticky);
/* Number of allocations attempted since the last mem_fail_after call. */
unsigned long mem_alloc_count(void);

/* Overflow-checked multiplication: 0 and *out written on success, -1 on overflow. */
static inline int mem_mul_size(size_t a, size_t b, size_t *out)
{
#if defined(__GNUC__)
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
#else
    if (a != 0 && b > (size_t)-1 / a)
        return -1;
    *out = a * b;
    return 0;
#endif
}

#endif
