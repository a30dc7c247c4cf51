/*
 * test_config.c - configuration precedence (defaults < file < environment <
 * flags), the file's error messages, bounds, and the startup check.
 */
#include "cmocka_all.h"

#include "core/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static void write_file(const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    static const char *const vars[] = {"GENAI_HOST",           "GENAI_PORT",
                                       "GENAI_API_KEY",        "GENAI_API_KEY_FILE",
                                       "GENAI_CORS_ORIGINS",   "GENAI_ALLOWED_HOSTS",
                                       "GENAI_MAX_BODY_BYTES", "GENAI_MAX_JSON_DEPTH",
                                       "GENAI_IDLE_TIMEOUT_S", "GENAI_MAX_CONNECTIONS",
                                       "GENAI_QUEUE_LIMIT",    "GENAI_QUEUE_TIMEOUT_S",
                                       "GENAI_SSE_PING_S",     "GENAI_CONFIG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/genai-config-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"a.json",    "bad.json", "key",
                                        "type.json", "arr.json", "genai.json"};
    char p[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", g_dir, names[i]);
        unlink(p);
    }
    rmdir(g_dir);
    clear_env();
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    genai_config c;
    char path[128];
    snprintf(path, sizeof(path), "%s/missing.json", g_dir);
    setenv("GENAI_CONFIG", path, 1);
    /* GENAI_CONFIG names a file explicitly: it must exist. */
    genai_error e;
    assert_true(config_load(&c, NULL, &e) < 0);
    unsetenv("GENAI_CONFIG");
    setenv("GENAI_HOME", g_dir, 1); /* <config dir>/genai.json absent: defaults */
    assert_int_equal(config_load(&c, NULL, &e), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, CONFIG_DEFAULT_PORT);
    assert_null(c.api_key);
    assert_int_equal(c.cors_origins.n, 0);
    assert_int_equal(c.max_body_bytes, 16u * 1024u * 1024u);
    assert_int_equal(c.max_json_depth, 64);
    assert_int_equal(config_validate(&c, &e), 0);
    config_free(&c);
}

static void test_precedence(void **state)
{
    (void)state;
    char path[128], keypath[128];
    write_file("key", "from-file-key\n", keypath, sizeof(keypath));
    char text[512];
    snprintf(text, sizeof(text),
             "{\"port\": 9000, \"max_json_depth\": 10, \"cors_origins\": [\"http://a\", "
             "\"http://b\"], \"api_key_file\": \"%s\", \"host\": \"127.0.0.2\"}",
             keypath);
    write_file("a.json", text, path, sizeof(path));
    setenv("GENAI_PORT", "9001", 1);
    setenv("GENAI_ALLOWED_HOSTS", " x.lan , ,y.lan", 1);
    genai_config c;
    genai_error e;
    assert_int_equal(config_load(&c, path, &e), 0);
    assert_int_equal(c.port, 9001);           /* env beats file */
    assert_int_equal(c.max_json_depth, 10);   /* file beats default */
    assert_string_equal(c.host, "127.0.0.2"); /* loopback too */
    assert_string_equal(c.api_key, "from-file-key");
    assert_int_equal(c.cors_origins.n, 2);
    assert_string_equal(c.cors_origins.items[1], "http://b");
    assert_int_equal(c.allowed_hosts.n, 2);
    assert_string_equal(c.allowed_hosts.items[0], "x.lan");
    assert_string_equal(c.allowed_hosts.items[1], "y.lan");
    /* Flags come last. */
    assert_int_equal(config_set(&c, "port", "9002", "--port", &e), 0);
    assert_int_equal(c.port, 9002);
    genai_config copy;
    assert_int_equal(config_copy(&copy, &c), 0);
    config_free(&c);
    assert_string_equal(copy.api_key, "from-file-key");
    assert_string_equal(copy.cors_origins.items[0], "http://a");
    config_free(&copy);
}

static void test_file_errors(void **state)
{
    (void)state;
    char path[128];
    genai_config c;
    genai_error e;
    write_file("bad.json", "{\"port\": 1, \"prot\": 2}", path, sizeof(path));
    assert_int_equal(config_load(&c, path, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "\"prot\""));
    assert_non_null(strstr(e.detail, path));

    write_file("type.json", "{\"port\": \"80\"}", path, sizeof(path));
    assert_int_equal(config_load(&c, path, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "port"));

    write_file("arr.json", "[1]", path, sizeof(path));
    assert_int_equal(config_load(&c, path, &e), GENAI_EBAD_ARG);

    write_file("genai.json", "{\"port\": 70000}", path, sizeof(path));
    assert_int_equal(config_load(&c, path, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "65535"));
}

static void test_set_and_validate(void **state)
{
    (void)state;
    genai_config c;
    genai_error e;
    config_init(&c);
    assert_int_equal(config_set(&c, "nope", "1", "--x", &e), GENAI_EBAD_ARG);
    assert_int_equal(config_set(&c, "port", "-1", "--port", &e), GENAI_EBAD_ARG);
    assert_int_equal(config_set(&c, "port", "12x", "--port", &e), GENAI_EBAD_ARG);
    assert_int_equal(config_set(&c, "max_json_depth", "0", "env", &e), GENAI_EBAD_ARG);
    assert_int_equal(c.port, CONFIG_DEFAULT_PORT); /* unchanged on failure */
    assert_int_equal(config_set(&c, "max_body_bytes", "2048", "env", &e), 0);
    assert_int_equal(c.max_body_bytes, 2048);
    assert_int_equal(config_set(&c, "host", "0.0.0.0", "--host", &e), 0);
    assert_int_equal(config_validate(&c, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "0.0.0.0"));
    assert_int_equal(config_set(&c, "api_key", "k", "env", &e), 0);
    assert_int_equal(config_validate(&c, &e), 0);
    assert_int_equal(config_set(&c, "api_key_file", "/nonexistent/key", "--api-key-file", &e),
                     -ENOENT);
    assert_string_equal(c.api_key, "k");
    config_free(&c);
    assert_true(config_host_is_loopback("127.0.0.1"));
    assert_true(config_host_is_loopback("127.9.9.9"));
    assert_true(config_host_is_loopback("::1"));
    assert_true(config_host_is_loopback("localhost"));
    assert_false(config_host_is_loopback("0.0.0.0"));
    assert_false(config_host_is_loopback("::"));
    assert_false(config_host_is_loopback("10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_validate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
