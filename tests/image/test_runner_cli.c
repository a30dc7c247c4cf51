/*
 * test_runner_cli.c - `genai image` as a real process, with GENAI_SD_CLI
 * pointing at the fake sd-cli: the PNG it writes and the seed it prints,
 * batch file names, JSON lines, the error paragraph, usage errors, and Ctrl-C
 * (SIGINT) cancelling a hung job with no child and no temporary directory
 * left behind.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/png.h"
#include "sd_spawn.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS 60000

static char genai_bin[PATH_MAX];
static char fake_bin[PATH_MAX];
static char model[PATH_MAX];
static char root[1024];
static char tmpdir[1100];
static char env_cli[PATH_MAX + 32];
static char env_tmp[1200];

static void path_in_root(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", root, name);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void check_png(const char *path, uint32_t w)
{
    uint8_t *data = NULL;
    size_t len = 0;
    img_png_info info;
    genai_error e;
    if (img_png_read_file(path, 0, &data, &len, &info, &e) < 0)
        fail_msg("%s: %s", path, e.detail);
    assert_int_equal(info.width, w);
    mem_free(data);
}

/* Runs genai with argv (after "genai") and extra environment. */
static void run_genai(sd_child *c, const char *const *args, const char *extra_env)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = genai_bin;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {env_cli, env_tmp, extra_env, NULL};
    int rc = sd_child_run(c, argv, env, RUN_MS);
    if (rc < 0)
        fail_msg("running genai: %s", strerror(-rc));
}

static void test_writes_png_and_prints_seed(void **state)
{
    (void)state;
    char out[PATH_MAX];
    path_in_root(out, sizeof(out), "cat.png");
    const char *args[] = {"image", "a lovely cat", "-m", model,    "-o", out, "--size",
                          "64x64", "--steps",      "2",  "--seed", "5",  NULL};
    sd_child c;
    run_genai(&c, args, NULL);
    if (!c.exited || c.exit_code != 0)
        fail_msg("genai image: status %d, stderr: %s", c.exit_code, c.err);
    assert_non_null(strstr(c.out, "seed 5"));
    assert_non_null(strstr(c.out, out));
    check_png(out, 64);
    assert_int_equal(tu_dir_entries(tmpdir), 0);
    sd_child_free(&c);
    unlink(out);
}

static void test_batch_json_lines(void **state)
{
    (void)state;
    char out[PATH_MAX];
    path_in_root(out, sizeof(out), "b.png");
    const char *args[] = {"image",   "a cat", "-m",     model, "-o",      out, "--size", "64x64",
                          "--steps", "3",     "--seed", "11",  "--batch", "2", "--json", NULL};
    sd_child c;
    run_genai(&c, args, NULL);
    if (!c.exited || c.exit_code != 0)
        fail_msg("genai image --json: status %d, stderr: %s", c.exit_code, c.err);
    /* Every line is one JSON object; progress never goes back; one "done". */
    int last = -1, progress = 0, done = 0;
    char *save = NULL;
    for (char *line = strtok_r(c.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (o == NULL)
            fail_msg("not JSON: %s", line);
        const char *ev = json_string_value(json_object_get(o, "event"));
        assert_non_null(ev);
        if (strcmp(ev, "progress") == 0) {
            int p = (int)json_integer_value(json_object_get(o, "percent"));
            assert_true(p >= last);
            last = p;
            progress++;
        } else {
            assert_string_equal(ev, "done");
            assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
            json_t *files = json_object_get(o, "files");
            json_t *seeds = json_object_get(o, "seeds");
            assert_int_equal(json_array_size(files), 2);
            assert_int_equal(json_integer_value(json_array_get(seeds, 0)), 11);
            assert_int_equal(json_integer_value(json_array_get(seeds, 1)), 12);
            for (size_t i = 0; i < 2; i++) {
                char want[PATH_MAX];
                snprintf(want, sizeof(want), "%s/b-%zu.png", root, i + 1);
                assert_string_equal(json_string_value(json_array_get(files, i)), want);
                check_png(want, 64);
                unlink(want);
            }
            done++;
        }
        json_decref(o);
    }
    assert_true(progress >= 6); /* 2 images x 3 steps at least */
    assert_int_equal(last, 100);
    assert_int_equal(done, 1);
    assert_int_equal(access(out, F_OK), -1); /* a batch never writes the bare name */
    sd_child_free(&c);
}

static void test_failure_paragraph(void **state)
{
    (void)state;
    char bogus[PATH_MAX], out[PATH_MAX];
    path_in_root(bogus, sizeof(bogus), "bogus.safetensors");
    path_in_root(out, sizeof(out), "never.png");
    FILE *f = fopen(bogus, "we");
    assert_non_null(f);
    fputs("not a model\n", f);
    fclose(f);
    const char *args[] = {"image", "a cat", "-m", bogus, "-o", out, "--size", "64x64", NULL};
    sd_child c;
    run_genai(&c, args, NULL);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 1);
    assert_non_null(strstr(c.err, "genai image: failed: sd-cli exited with code 1"));
    assert_non_null(strstr(c.err, "(model_unknown)"));
    assert_non_null(strstr(c.err, "get sd version from file failed"));
    /* Said once: the library does not log what the command reports. */
    assert_int_equal(count(c.err, "exited with code 1"), 1);
    assert_int_equal(access(out, F_OK), -1);
    sd_child_free(&c);

    const char *jargs[] = {"image", "a cat", "-m", bogus, "-o", out, "--json", NULL};
    run_genai(&c, jargs, NULL);
    assert_int_equal(c.exit_code, 1);
    /* Progress lines, then the "done" line last. */
    size_t len = strlen(c.out);
    assert_true(len > 1 && c.out[len - 1] == '\n');
    c.out[len - 1] = '\0';
    const char *last = strrchr(c.out, '\n');
    last = last != NULL ? last + 1 : c.out;
    json_error_t je;
    json_t *o = json_loads(last, 0, &je);
    if (o == NULL)
        fail_msg("not a JSON line: %s", last);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "done");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "cause")), "model_unknown");
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(o, "last_lines")),
                           "get sd version from file failed"));
    json_decref(o);
    sd_child_free(&c);
    unlink(bogus);
    assert_int_equal(tu_dir_entries(tmpdir), 0);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *cases[][6] = {
        {"image", "a cat", "-m", model, "--steps", "abc"},
        {"image", "a cat", "-m", model, "--size", "100x64"}, /* not a multiple of 64 */
        {"image", "a cat", "--size", "64x64", NULL, NULL},   /* no model */
        {"image", "a cat", "-m", model, "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[7] = {0};
        for (size_t k = 0; k < 6; k++)
            args[k] = cases[i][k];
        sd_child c;
        run_genai(&c, args, NULL);
        assert_true(c.exited);
        if (c.exit_code != 2)
            fail_msg("case %zu: status %d, stderr %s", i, c.exit_code, c.err);
        assert_non_null(strstr(c.err, "genai image:"));
        sd_child_free(&c);
    }
}

/* Ctrl-C while sd-cli hangs: cancelled, exit 130, sd-cli gone, nothing left. */
static void test_ctrl_c_cancels(void **state)
{
    (void)state;
    char out[PATH_MAX], pidfile[PATH_MAX], pidenv[PATH_MAX + 32];
    path_in_root(out, sizeof(out), "hang.png");
    path_in_root(pidfile, sizeof(pidfile), "sd.pid");
    snprintf(pidenv, sizeof(pidenv), "FAKE_SD_PID_FILE=%s", pidfile);
    const char *argv[] = {genai_bin, "image", "a cat",   "-m", model,    "-o", out,
                          "--size",  "64x64", "--steps", "4",  "--json", NULL};
    const char *env[] = {env_cli, env_tmp, pidenv, "FAKE_SD_HANG_AT_STEP=2", NULL};
    sd_child c;
    assert_int_equal(sd_child_start(&c, argv, env), 0);
    assert_int_equal(sd_child_read_until(&c, "\"step\":1", RUN_MS), 1);
    assert_int_equal(tu_dir_entries(tmpdir), 1); /* the job's private directory */
    FILE *f = fopen(pidfile, "re");
    assert_non_null(f);
    int sd_pid = 0;
    assert_int_equal(fscanf(f, "%d", &sd_pid), 1);
    fclose(f);
    assert_int_equal(kill(sd_pid, 0), 0);
    assert_int_equal(kill(c.pid, SIGINT), 0);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 130);
    assert_non_null(strstr(c.out, "\"state\":\"cancelled\""));
    /* sd-cli was reaped by genai before it exited. */
    int64_t deadline = tu_now_ms() + 5000;
    while (kill(sd_pid, 0) == 0 && tu_now_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(kill(sd_pid, 0), -1);
    assert_int_equal(tu_dir_entries(tmpdir), 0);
    assert_int_equal(access(out, F_OK), -1);
    sd_child_free(&c);
    unlink(pidfile);
}

static int setup(void **state)
{
    (void)state;
    const char *build = getenv("GENAI_BUILD_DIR");
    const char *data = getenv("GENAI_TEST_DATA");
    if (build == NULL || data == NULL)
        return -1;
    snprintf(genai_bin, sizeof(genai_bin), "%s/src/cli/genai", build);
    snprintf(fake_bin, sizeof(fake_bin), "%s/tests/doubles/sd/fake-sd-cli", build);
    snprintf(model, sizeof(model), "%s/image/tiny-sd1.fake.safetensors", data);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/genai-image-cli-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", root);
    if (mkdir(tmpdir, 0700) != 0)
        return -1;
    snprintf(env_cli, sizeof(env_cli), "GENAI_SD_CLI=%s", fake_bin);
    snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rm_rf(root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_png_and_prints_seed),
        cmocka_unit_test(test_batch_json_lines),
        cmocka_unit_test(test_failure_paragraph),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_ctrl_c_cancels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
