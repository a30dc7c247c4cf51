/*
 * test_guard.c - the request checks: constant-time key comparison, bearer
 * parsing, Host and Origin rules, and the bounded JSON parser.
 */
#include "cmocka_all.h"

#include "http/guard.h"

#include <string.h>

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(guard_secret_equal("abc", 3, "abc", 3));
    assert_false(guard_secret_equal("xbc", 3, "abc", 3));
    assert_false(guard_secret_equal("abx", 3, "abc", 3));
    assert_false(guard_secret_equal("ab", 2, "abc", 3));
    assert_false(guard_secret_equal("abcd", 4, "abc", 3));
    assert_false(guard_secret_equal("abc", 2, "abc", 3)); /* the length counts */
    assert_false(guard_secret_equal(NULL, 0, "abc", 3));
    assert_true(guard_secret_equal(NULL, 0, "", 0));
    /* Embedded NULs are compared, not treated as the end. */
    assert_false(guard_secret_equal("a\0b", 3, "a\0c", 3));
}

static void test_bearer(void **state)
{
    (void)state;
    assert_true(guard_bearer_ok("Bearer k1", "k1"));
    assert_true(guard_bearer_ok("bearer   k1  ", "k1"));
    assert_false(guard_bearer_ok("Bearer k2", "k1"));
    assert_false(guard_bearer_ok("Basic k1", "k1"));
    assert_false(guard_bearer_ok("Bearer", "k1"));
    assert_false(guard_bearer_ok(NULL, "k1"));
    assert_false(guard_bearer_ok("Bearer k1", NULL));
}

static void test_host(void **state)
{
    (void)state;
    char a[] = "genai.lan", b[] = "box:8080";
    char *items[] = {a, b};
    config_list allowed = {items, 2};
    config_list none = {NULL, 0};
    assert_true(guard_host_ok(NULL, 11435, &none));
    assert_true(guard_host_ok("127.0.0.1:11435", 11435, &none));
    assert_true(guard_host_ok("localhost:11435", 11435, &none));
    assert_true(guard_host_ok("LOCALHOST", 11435, &none));
    assert_true(guard_host_ok("[::1]:11435", 11435, &none));
    assert_true(guard_host_ok("192.168.1.5:11435", 11435, &none)); /* IP literal */
    assert_false(guard_host_ok("localhost:11436", 11435, &none));
    assert_false(guard_host_ok("evil.example:11435", 11435, &none));
    assert_false(guard_host_ok("127.1:11435", 11435, &none)); /* not a dotted quad */
    assert_false(guard_host_ok("::1", 11435, &none));
    assert_false(guard_host_ok("[::1", 11435, &none));
    assert_false(guard_host_ok("localhost:", 11435, &none));
    assert_false(guard_host_ok("localhost:99999", 11435, &none));
    assert_false(guard_host_ok("localhost:80x", 11435, &none));
    assert_false(guard_host_ok("", 11435, &none));
    assert_true(guard_host_ok("genai.lan", 11435, &allowed));
    assert_true(guard_host_ok("Genai.Lan:11435", 11435, &allowed));
    assert_true(guard_host_ok("box:8080", 11435, &allowed)); /* behind a port mapping */
    assert_false(guard_host_ok("box:8081", 11435, &allowed));
    assert_false(guard_host_ok("genai.lan.evil.example", 11435, &allowed));
    char star[] = "*";
    char *any_items[] = {star};
    config_list any = {any_items, 1};
    assert_true(guard_host_ok("whatever.example", 11435, &any));
}

static void test_origin(void **state)
{
    (void)state;
    char a[] = "http://app.example";
    char *items[] = {a};
    config_list allowed = {items, 1};
    config_list none = {NULL, 0};
    assert_true(guard_origin_ok("http://app.example", &allowed));
    assert_false(guard_origin_ok("http://app.example:8080", &allowed));
    assert_false(guard_origin_ok("http://evil.example", &allowed));
    assert_false(guard_origin_ok("http://app.example", &none));
    assert_false(guard_origin_ok(NULL, &allowed));
}

static void test_json_depth(void **state)
{
    (void)state;
    const char *s = "{\"a\":[1,{\"b\":\"[[[{{{\\\"]]\"}]}";
    assert_int_equal(guard_json_depth(s, strlen(s), 64), 3);
    assert_int_equal(guard_json_depth("[[[[", 4, 3), 4); /* stops at max + 1 */
    assert_int_equal(guard_json_depth("\"\\", 2, 3), 0); /* escape at the end */
    assert_int_equal(guard_json_depth("]]]][", 5, 3), 1);
    assert_int_equal(guard_json_depth("", 0, 3), 0);
}

static void test_json_parse(void **state)
{
    (void)state;
    json_t *v = NULL;
    genai_error e;
    assert_int_equal(guard_json_parse("{\"a\":[[1]]}", 11, 3, &v, &e), 0);
    assert_int_equal(
        json_integer_value(json_array_get(json_array_get(json_object_get(v, "a"), 0), 0)), 1);
    json_decref(v);
    v = NULL;
    assert_int_equal(guard_json_parse("{\"a\":[[1]]}", 11, 2, &v, &e), GENAI_ETOO_LARGE);
    assert_null(v);
    assert_int_equal(guard_json_parse("{\"a\":1,\"a\":2}", 13, 8, &v, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "duplicate"));
    assert_int_equal(guard_json_parse("{\"a\":", 5, 8, &v, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "column"));
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_equal), cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_host),         cmocka_unit_test(test_origin),
        cmocka_unit_test(test_json_depth),   cmocka_unit_test(test_json_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
