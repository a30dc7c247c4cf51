#include "cmocka_all.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void clear_env(void)
{
    unsetenv("GENAI_HOME");
    unsetenv("XDG_DATA_HOME");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("XDG_RUNTIME_DIR");
}

static void test_genai_home_override(void **state)
{
    (void)state;
    clear_env();
    setenv("GENAI_HOME", "/srv/g/", 1);
    setenv("XDG_DATA_HOME", "/ignored", 1);
    genai_paths p;
    assert_int_equal(paths_resolve(&p, NULL), 0);
    assert_string_equal(p.data, "/srv/g/data");
    assert_string_equal(p.config, "/srv/g/config");
    assert_string_equal(p.cache, "/srv/g/cache");
    assert_string_equal(p.runtime, "/srv/g/run");
    genai_error e;
    setenv("GENAI_HOME", "relative", 1);
    assert_int_equal(paths_resolve(&p, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "GENAI_HOME"));
}

static void test_xdg(void **state)
{
    (void)state;
    clear_env();
    setenv("HOME", "/home/u", 1);
    genai_paths p;
    assert_int_equal(paths_resolve(&p, NULL), 0);
    assert_string_equal(p.data, "/home/u/.local/share/genai");
    assert_string_equal(p.config, "/home/u/.config/genai");
    assert_string_equal(p.cache, "/home/u/.cache/genai");
    assert_string_equal(p.runtime, "/home/u/.cache/genai/run");
    setenv("XDG_DATA_HOME", "/d", 1);
    setenv("XDG_CONFIG_HOME", "not/absolute", 1); /* ignored per the spec */
    setenv("XDG_RUNTIME_DIR", "/run/user/1", 1);
    assert_int_equal(paths_resolve(&p, NULL), 0);
    assert_string_equal(p.data, "/d/genai");
    assert_string_equal(p.config, "/home/u/.config/genai");
    assert_string_equal(p.runtime, "/run/user/1/genai");
    unsetenv("HOME");
    genai_error e;
    assert_int_equal(paths_resolve(&p, &e), GENAI_EBAD_ARG);
}

static void test_mkdirs_and_read(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/genai-paths-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char dir[PATHS_MAX], file[PATHS_MAX];
    assert_int_equal(paths_join(dir, sizeof(dir), tmpl, "a/b/c"), 0);
    assert_int_equal(paths_mkdirs(dir, 0700, NULL), 0);
    assert_int_equal(paths_mkdirs(dir, 0700, NULL), 0); /* idempotent */
    assert_int_equal(paths_join(file, sizeof(file), dir, "f.txt"), 0);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    for (int i = 0; i < 3000; i++)
        fputs("0123456789", f);
    fclose(f);

    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(paths_read_file(file, 1 << 20, &buf, &len, NULL), 0);
    assert_int_equal(len, 30000);
    assert_int_equal(buf[len], '\0');
    mem_free(buf);

    genai_error e;
    buf = NULL;
    assert_int_equal(paths_read_file(file, 1000, &buf, &len, &e), GENAI_ETOO_LARGE);
    assert_null(buf);
    assert_int_equal(paths_read_file("/nonexistent/x", 10, &buf, &len, &e), -ENOENT);
    assert_non_null(strstr(e.detail, "/nonexistent/x"));

    /* A file where a directory should be. */
    assert_int_equal(paths_mkdirs(file, 0700, &e), -ENOTDIR);

    char small[8];
    assert_int_equal(paths_join(small, sizeof(small), "/abcdef", "gh"), -ENAMETOOLONG);
    assert_int_equal(paths_join(small, sizeof(small), "/a/", "/b"), 0);
    assert_string_equal(small, "/a/b");

    unlink(file);
    char cmd[PATHS_MAX];
    for (int i = 0; i < 3; i++) {
        rmdir(dir);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
    }
    (void)cmd;
    assert_int_equal(rmdir(tmpl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genai_home_override),
        cmocka_unit_test(test_xdg),
        cmocka_unit_test(test_mkdirs_and_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
