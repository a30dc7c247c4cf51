#include "cmocka_all.h"

#include "core/error.h"

#include <errno.h>
#include <string.h>

static void test_domain_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(genai_err_name(GENAI_ECORRUPT), "GENAI_ECORRUPT");
    assert_string_equal(genai_strerror(GENAI_ECORRUPT), "corrupt or malformed input");
    assert_string_equal(genai_err_name(GENAI_EINTERNAL), "GENAI_EINTERNAL");
    assert_true(err_is_domain(GENAI_ENO_FIT));
    assert_false(err_is_domain(-ENOENT));
    assert_false(err_is_domain(0));
}

static void test_errno_names(void **state)
{
    (void)state;
    assert_string_equal(genai_err_name(-ENOENT), "ENOENT");
    assert_string_equal(genai_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(genai_err_name(0), "OK");
    assert_string_equal(genai_err_name(-29999 - 5000), "UNKNOWN");
    assert_string_equal(genai_strerror(12345), "unknown error");
}

static void test_set_and_prefix(void **state)
{
    (void)state;
    genai_error e;
    genai_error_clear(&e);
    assert_int_equal(err_set(&e, GENAI_ECORRUPT, "bad tensor count %d at offset %d", 7, 24),
                     GENAI_ECORRUPT);
    assert_int_equal(e.code, GENAI_ECORRUPT);
    assert_string_equal(e.detail, "bad tensor count 7 at offset 24");
    assert_int_equal(err_prefix(&e, "reading %s", "m.gguf"), GENAI_ECORRUPT);
    assert_string_equal(e.detail, "reading m.gguf: bad tensor count 7 at offset 24");
    assert_int_equal(err_errno(&e, ENOENT, "opening %s", "x"), -ENOENT);
    assert_string_equal(e.detail, "opening x: No such file or directory");
    /* NULL error objects are allowed and keep the code flowing. */
    assert_int_equal(err_set(NULL, GENAI_EBUSY, "x"), GENAI_EBUSY);
    assert_int_equal(err_prefix(NULL, "y"), 0);
}

static void test_detail_truncates(void **state)
{
    (void)state;
    genai_error e;
    char big[GENAI_ERROR_DETAIL_MAX * 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    err_set(&e, GENAI_ETOO_LARGE, "%s", big);
    assert_int_equal(strlen(e.detail), GENAI_ERROR_DETAIL_MAX - 1);
    err_prefix(&e, "ctx");
    assert_int_equal(strlen(e.detail), GENAI_ERROR_DETAIL_MAX - 1);
    assert_memory_equal(e.detail, "ctx: aaa", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_names_and_messages),
        cmocka_unit_test(test_errno_names),
        cmocka_unit_test(test_set_and_prefix),
        cmocka_unit_test(test_detail_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
