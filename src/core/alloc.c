/*
 * alloc.c - allocation funnel with failure injection (see alloc.h).
 *
 * The counters are atomics so that the funnel can be used from every thread;
 * failure injection is meant for single-threaded unit tests.
 */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fail_at;     /* 0: never fail */
static atomic_ulong alloc_count; /* allocations since mem_fail_after */
static atomic_int fail_sticky;

static int should_fail(void)
{
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    unsigned long at = atomic_load(&fail_at);
    if (at == 0)
        return 0;
    if (n == at)
        return 1;
    return n > at && atomic_load(&fail_sticky);
}

void mem_fail_after(unsigned long n, int sticky)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
}

unsigned long mem_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

void *mem_alloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size == 0 ? 1 : size);
}

void *mem_calloc(size_t count, size_t size)
{
    size_t total;
    if (mem_mul_size(count, size, &total) != 0)
        return NULL;
    if (should_fail())
        return NULL;
    return calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
}

void *mem_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(ptr, size == 0 ? 1 : size);
}

void *mem_reallocarray(void *ptr, size_t count, size_t size)
{
    size_t total;
    if (mem_mul_size(count, size, &total) != 0)
        return NULL;
    return mem_realloc(ptr, total);
}

char *mem_strndup(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    size_t len = strnlen(s, n);
    char *copy = mem_alloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *mem_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return mem_strndup(s, strlen(s));
}

void mem_free(void *ptr)
{
    free(ptr);
}
