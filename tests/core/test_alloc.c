#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/sbuf.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static void test_overflow_checked(void **state)
{
    (void)state;
    assert_null(mem_calloc(SIZE_MAX / 2, 3));
    assert_null(mem_reallocarray(NULL, SIZE_MAX / 4, 8));
    size_t out = 0;
    assert_int_equal(mem_mul_size(SIZE_MAX, 2, &out), -1);
    assert_int_equal(mem_mul_size(1000, 1000, &out), 0);
    assert_int_equal(out, 1000000);
}

static void test_fail_injection(void **state)
{
    (void)state;
    mem_fail_after(2, 0);
    void *a = mem_alloc(8);
    void *b = mem_alloc(8);
    void *c = mem_alloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    mem_free(a);
    mem_free(c);
    mem_fail_after(1, 1);
    assert_null(mem_strdup("x"));
    assert_null(mem_alloc(1));
    mem_fail_after(0, 0);
    char *s = mem_strndup("hello world", 5);
    assert_string_equal(s, "hello");
    mem_free(s);
    mem_free(NULL);
}

static void test_sbuf(void **state)
{
    (void)state;
    sbuf b = SBUF_INIT;
    assert_string_equal(sbuf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sbuf_printf(&b, "%d,", i), 0);
    assert_int_equal(sbuf_error(&b), 0);
    assert_memory_equal(sbuf_str(&b), "0,1,2,", 6);
    assert_int_equal(strlen(sbuf_str(&b)), b.len);
    sbuf_reset(&b);
    assert_string_equal(sbuf_str(&b), "");
    sbuf_puts(&b, "abc");
    char *taken = sbuf_take(&b);
    assert_string_equal(taken, "abc");
    mem_free(taken);
    assert_null(b.data);

    /* A failed append sticks, later appends are ignored. */
    mem_fail_after(1, 1);
    assert_int_equal(sbuf_puts(&b, "x"), -ENOMEM);
    mem_fail_after(0, 0);
    assert_int_equal(sbuf_puts(&b, "y"), -ENOMEM);
    assert_int_equal(sbuf_error(&b), -ENOMEM);
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_checked),
        cmocka_unit_test(test_fail_injection),
        cmocka_unit_test(test_sbuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
