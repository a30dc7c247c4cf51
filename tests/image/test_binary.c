#include "cmocka_all.h"

#include "image/binary.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_version_contract_line(void **state)
{
    (void)state;
    /* contracts/stable-diffusion-cpp.md §1, observed with master-827. */
    const char *out = "stable-diffusion.cpp version master-827-97d2990+, commit 97d29908\n";
    img_sd_version v;
    genai_error e;
    assert_int_equal(img_version_parse(out, strlen(out), &v, &e), 0);
    assert_string_equal(v.branch, "master");
    assert_int_equal(v.count, 827);
    assert_string_equal(v.sha7, "97d2990");
    assert_int_equal(v.modified, 1);
    assert_string_equal(v.commit, "97d29908");
    assert_true(img_version_at_least(&v, 611));
    assert_true(img_version_at_least(&v, 827));
    assert_false(img_version_at_least(&v, 828));
}

static void test_version_variants(void **state)
{
    (void)state;
    img_sd_version v;
    genai_error e;
    /* Unmodified tree, CRLF, the line among others, a branch with dashes. */
    const char *a = "noise\r\nstable-diffusion.cpp version master-782-b290693, commit b2906939\r\n";
    assert_int_equal(img_version_parse(a, strlen(a), &v, &e), 0);
    assert_int_equal(v.count, 782);
    assert_int_equal(v.modified, 0);
    assert_string_equal(v.commit, "b2906939");
    const char *b = "stable-diffusion.cpp version my-fork-x-12-abcdef1, commit abcdef12";
    assert_int_equal(img_version_parse(b, strlen(b), &v, &e), 0);
    assert_string_equal(v.branch, "my-fork-x");
    assert_int_equal(v.count, 12);
    assert_false(img_version_at_least(&v, 240));
    /* Unknown version counts as new. */
    img_sd_version unknown = {0};
    assert_true(img_version_at_least(&unknown, 100000));
    assert_true(img_version_at_least(NULL, 611));
}

static void test_version_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "stable-diffusion.cpp version master-827-97d2990+",          /* no commit */
        "stable-diffusion.cpp version 827-97d2990, commit 97d29908", /* no branch */
        "stable-diffusion.cpp version master-8x7-97d2990, commit 97d29908",
        "stable-diffusion.cpp version master-827-zzzz, commit 97d29908",
        "stable-diffusion.cpp version master-827-97d2990, commit nothex!",
        "stable-diffusion.cpp version master-12345678901-97d2990, commit 97d29908",
        "llama.cpp version: 10470 (34af94cd9)",
    };
    img_sd_version v = {.count = 5};
    genai_error e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(img_version_parse(bad[i], strlen(bad[i]), &v, &e), GENAI_ECORRUPT);
    assert_int_equal(v.count, 5);
    /* Length is honoured: the same text cut before the commit fails. */
    const char *ok = "stable-diffusion.cpp version master-827-97d2990, commit 97d29908";
    assert_int_equal(img_version_parse(ok, strlen(ok) - 10, &v, &e), GENAI_ECORRUPT);
}

static char tmpdir[256];

static void make_file(const char *dir, const char *name, mode_t mode, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s", dir, name);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    assert_int_equal(chmod(out, mode), 0);
}

static void test_find(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/genai-sdbin-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char bindir[PATH_MAX], exe[PATH_MAX], plain[PATH_MAX], path_exe[PATH_MAX], found[PATH_MAX];
    snprintf(bindir, sizeof(bindir), "%s/bin", tmpdir);
    assert_int_equal(mkdir(bindir, 0700), 0);
    make_file(tmpdir, "my-sd", 0700, exe, sizeof(exe));
    make_file(tmpdir, "not-exec", 0600, plain, sizeof(plain));
    make_file(bindir, "sd-cli", 0755, path_exe, sizeof(path_exe));
    genai_error e;
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;

    /* 1. configured path wins over everything. */
    setenv("GENAI_SD_CLI", plain, 1);
    assert_int_equal(img_bin_find(exe, "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e), 0);
    assert_string_equal(found, exe);
    /* A configured path that is not executable is an error, not a fallback. */
    assert_int_equal(img_bin_find(plain, "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e),
                     -EACCES);
    assert_non_null(strstr(e.detail, "not-exec"));
    /* 2. the variable. */
    assert_int_equal(img_bin_find(NULL, "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e),
                     -EACCES);
    setenv("GENAI_SD_CLI", exe, 1);
    assert_int_equal(img_bin_find("", "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e), 0);
    assert_string_equal(found, exe);
    /* 3. PATH, skipping relative and empty entries. */
    unsetenv("GENAI_SD_CLI");
    char newpath[PATH_MAX * 2];
    snprintf(newpath, sizeof(newpath), "::relative:/nonexistent:%s", bindir);
    setenv("PATH", newpath, 1);
    assert_int_equal(img_bin_find(NULL, "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e), 0);
    assert_string_equal(found, path_exe);
    /* Too small an output buffer. */
    char tiny[8];
    assert_int_equal(img_bin_find(NULL, "GENAI_SD_CLI", "sd-cli", tiny, sizeof(tiny), &e),
                     -ENAMETOOLONG);
    /* Not found anywhere. */
    setenv("PATH", "/nonexistent", 1);
    assert_int_equal(img_bin_find(NULL, "GENAI_SD_CLI", "sd-cli", found, sizeof(found), &e),
                     GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "GENAI_SD_CLI"));
    assert_int_equal(img_bin_find(NULL, NULL, "../sd-cli", found, sizeof(found), &e),
                     GENAI_EBAD_ARG);

    if (old_path) {
        setenv("PATH", old_path, 1);
        free(old_path);
    }
    unlink(exe);
    unlink(plain);
    unlink(path_exe);
    rmdir(bindir);
    rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_contract_line),
        cmocka_unit_test(test_version_variants),
        cmocka_unit_test(test_version_garbage),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
