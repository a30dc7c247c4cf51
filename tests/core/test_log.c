#include "cmocka_all.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>

struct capture {
    int calls;
    enum log_level level;
    char module[32];
    char msg[256];
};

static void capture_sink(enum log_level level, const char *module, const char *msg, void *ud)
{
    struct capture *c = ud;
    c->calls++;
    c->level = level;
    snprintf(c->module, sizeof(c->module), "%s", module);
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static void test_levels_filter(void **state)
{
    (void)state;
    struct capture c = {0};
    log_set_sink(capture_sink, &c);
    log_set_level(LOG_LEVEL_WARN);
    LOG_INFO("sys", "hidden %d", 1);
    assert_int_equal(c.calls, 0);
    LOG_WARN("sys", "shown %d", 2);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.level, LOG_LEVEL_WARN);
    assert_string_equal(c.module, "sys");
    assert_string_equal(c.msg, "shown 2");
    log_set_level(LOG_LEVEL_TRACE);
    LOG_TRACE(NULL, "t");
    assert_int_equal(c.calls, 2);
    assert_string_equal(c.module, "-");
    log_set_sink(NULL, NULL);
}

static void test_parse(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_parse_level("0", &l), 0);
    assert_int_equal(l, LOG_LEVEL_ERROR);
    assert_int_equal(log_parse_level("loud", &l), GENAI_EBAD_ARG);
    assert_int_equal(log_parse_level("9", &l), GENAI_EBAD_ARG);
    assert_string_equal(log_level_name(LOG_LEVEL_INFO), "info");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_filter),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
