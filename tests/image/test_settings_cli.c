/*
 * test_settings_cli.c - the diffusion model knowledge end to end, through
 * real `genai` processes and the fake sd-cli (GENAI_SD_CLI): `genai add`
 * detects the family and refuses an incomplete set naming the missing role;
 * `genai show` prints the detection and the settings; `genai settings`
 * edits the override (refusing values outside a range, naming the key);
 * `genai image -m ID` applies the model's settings, adjusts with warnings,
 * refuses under --policy strict before sd-cli runs, and honours the
 * registry's override. What sd-cli was really asked is read back from the
 * "parameters" text the fake writes into each PNG.
 *
 * The fixtures have real families' tensor layouts (dm_fixtures.h) and carry
 * the fake sd-cli's model description in their safetensors metadata
 * (docs/sd-double.md), so genai reads them as models and the fake runs them.
 */
#include "cmocka_all.h"

#include "diffusion/dm_fixtures.h"
#include "sd_spawn.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_MS 60000

static char genai_bin[PATH_MAX];
static char env_cli[PATH_MAX + 32];
static char env_home[PATH_MAX + 32];
static char env_tmp[PATH_MAX + 32];
static char env_pid[PATH_MAX + 32];
static char pid_file[PATH_MAX];

struct fx {
    char *dir;
    char *lightning, *flux, *clip_l, *t5, *vae;
    char *out;
    int fds;
};

static const char *const sdxl_meta[] = {"fake_sd_model", "version=SDXL\nsplit_ok=1\n"};
static const char *const flux_meta[] = {"fake_sd_model", "version=Flux\nsplit_ok=1\n"};

static int setup(void **state)
{
    struct fx *f = mem_calloc(1, sizeof(*f));
    const char *build = getenv("GENAI_BUILD_DIR");
    assert_non_null(build);
    snprintf(genai_bin, sizeof(genai_bin), "%s/src/cli/genai", build);
    snprintf(env_cli, sizeof(env_cli), "GENAI_SD_CLI=%s/tests/doubles/sd/fake-sd-cli", build);
    f->dir = tu_tmpdir("dm");
    /* A registry of our own per test, and sd-cli's work folders beside it. */
    snprintf(env_home, sizeof(env_home), "GENAI_HOME=%s/home", f->dir);
    snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", f->dir);
    snprintf(pid_file, sizeof(pid_file), "%s/sd.pid", f->dir);
    snprintf(env_pid, sizeof(env_pid), "FAKE_SD_PID_FILE=%s", pid_file);
    f->lightning = dmt_write_st(f->dir, "sdxl_lightning_4step.safetensors", dmt_sdxl, dmt_sdxl_n,
                                sdxl_meta, 1);
    f->flux = dmt_write_st(f->dir, "flux1-dev.safetensors", dmt_flux_dev_bare, dmt_flux_dev_bare_n,
                           flux_meta, 1);
    f->clip_l = dmt_write_st(f->dir, "clip_l.safetensors", dmt_clip_l, dmt_clip_l_n, NULL, 0);
    f->t5 = dmt_write_st(f->dir, "t5xxl_fp16.safetensors", dmt_t5xxl, dmt_t5xxl_n, NULL, 0);
    f->vae = dmt_write_st(f->dir, "ae.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    f->out = tu_path(f->dir, "out.png");
    f->fds = tu_fd_count();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    assert_int_equal(tu_fd_count(), f->fds);
    char home[PATH_MAX];
    snprintf(home, sizeof(home), "%s/home", f->dir);
    tu_rm_rf(home);
    char **paths[] = {&f->lightning, &f->flux, &f->clip_l, &f->t5, &f->vae, &f->out};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        mem_free(*paths[i]);
    tu_rmdir(f->dir);
    mem_free(f->dir);
    mem_free(f);
    return 0;
}

/* Runs genai with args (after "genai"); returns its exit status. */
static int run(sd_child *c, const char *const *args)
{
    const char *argv[40];
    size_t n = 0;
    argv[n++] = genai_bin;
    for (size_t i = 0; args[i] != NULL && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {env_cli, env_home, env_tmp, env_pid, NULL};
    int rc = sd_child_run(c, argv, env, RUN_MS);
    if (rc < 0)
        fail_msg("running genai: %s", strerror(-rc));
    if (!c->exited)
        fail_msg("genai killed by signal %d; stderr: %s", c->term_signal, c->err);
    return c->exit_code;
}

static void run_ok(sd_child *c, const char *const *args)
{
    if (run(c, args) != 0)
        fail_msg("genai %s %s: status %d\nstdout: %s\nstderr: %s", args[0], args[1], c->exit_code,
                 c->out, c->err);
}

/* The PNG's "parameters" text (tEXt is stored as is): what sd-cli was asked. */
static int png_says(const char *path, const char *text)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = mem_alloc((size_t)st.st_size);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    int found = memmem(buf, (size_t)st.st_size, text, strlen(text)) != NULL;
    mem_free(buf);
    return found;
}

static json_t *json_of(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", je.text, text);
    return j;
}

/* The last line of JSON lines output (the "done" event). */
static json_t *last_json_line(char *out)
{
    char *last = NULL, *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save))
        last = l;
    assert_non_null(last);
    return json_of(last);
}

static void add_lightning(struct fx *f)
{
    sd_child c;
    const char *add[] = {"add", f->lightning, "--kind", "diffusion", "--name", "light", NULL};
    run_ok(&c, add);
    assert_non_null(strstr(c.out, "family: SDXL lightning"));
    sd_child_free(&c);
}

/* add detects and stores; show prints; settings edits, refuses, resets. */
static void test_add_show_settings(void **state)
{
    struct fx *f = *state;
    sd_child c;
    add_lightning(f);

    const char *show[] = {"show", "light", "--json", NULL};
    run_ok(&c, show);
    json_t *j = json_of(c.out);
    json_t *det = json_object_get(j, "detection");
    assert_string_equal(json_string_value(json_object_get(det, "family")), "sdxl");
    assert_string_equal(json_string_value(json_object_get(det, "variant")), "lightning");
    assert_string_equal(json_string_value(json_object_get(det, "confidence")), "high");
    assert_non_null(strstr(json_string_value(json_object_get(det, "evidence")), "attn2"));
    json_t *steps = json_object_get(json_object_get(j, "settings"), "steps");
    assert_int_equal(json_integer_value(json_object_get(steps, "default")), 4);
    assert_int_equal(json_integer_value(json_object_get(steps, "max")), 8);
    assert_true(json_is_null(json_object_get(j, "settings_override")));
    json_decref(j);
    sd_child_free(&c);

    const char *show_h[] = {"show", "light", NULL};
    run_ok(&c, show_h);
    assert_non_null(strstr(c.out, "family:    SDXL, variant lightning (confidence high"));
    assert_non_null(strstr(c.out, "steps            4 (1..8)"));
    assert_non_null(strstr(c.out, "sampler          euler"));
    assert_non_null(strstr(c.out, "settings:  built-in\n"));
    sd_child_free(&c);

    /* Outside the range: refused, naming the key and the range; nothing stored. */
    const char *too_many[] = {"settings", "light", "steps=12", NULL};
    assert_int_equal(run(&c, too_many), 1);
    assert_non_null(strstr(c.err, "'steps' 12 (1..8)"));
    sd_child_free(&c);
    const char *bad_key[] = {"settings", "light", "stepz=4", NULL};
    assert_int_equal(run(&c, bad_key), 2);
    assert_non_null(strstr(c.err, "unknown key 'stepz'"));
    sd_child_free(&c);
    const char *bad_sampler[] = {"settings", "light", "sampler=warp", NULL};
    assert_int_equal(run(&c, bad_sampler), 2);
    assert_non_null(strstr(c.err, "sampler: 'warp'"));
    sd_child_free(&c);

    /* A range and its default together; the policy; printed back as JSON. */
    const char *edit[] = {"settings", "light",  "steps.max=12", "steps=10",
                          "--policy", "strict", "--json",       NULL};
    run_ok(&c, edit);
    j = json_of(c.out);
    json_t *s = json_object_get(j, "settings");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "steps"), "default")),
                     10);
    assert_string_equal(json_string_value(json_object_get(s, "policy")), "strict");
    json_t *ovr = json_object_get(j, "settings_override");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ovr, "steps"), "max")), 12);
    json_decref(j);
    sd_child_free(&c);

    run_ok(&c, show_h);
    assert_non_null(strstr(c.out, "steps            10 (1..12)"));
    assert_non_null(strstr(c.out, "with this model's override"));
    sd_child_free(&c);

    const char *reset[] = {"settings", "light", "--reset", NULL};
    run_ok(&c, reset);
    assert_non_null(strstr(c.out, "steps            4 (1..8)"));
    assert_non_null(strstr(c.out, "policy           adjust"));
    sd_child_free(&c);
}

/* The scene: the app's CFG 7 and 30 steps on a Lightning model are
 * adjusted, with warnings, and sd-cli is asked for the model's values. */
static void test_image_applies_and_adjusts(void **state)
{
    struct fx *f = *state;
    sd_child c;
    add_lightning(f);
    const char *usual[] = {"image",   "a cat", "-m",         "light",  "-o",     f->out,
                           "--steps", "30",    "--cfg",      "7",      "--size", "512x512",
                           "--seed",  "3",     "--negative", "blurry", NULL};
    run_ok(&c, usual);
    assert_non_null(strstr(c.err, "warning: steps 30 adjusted to 8: SDXL Lightning supports 1..8"));
    assert_non_null(strstr(c.err, "warning: cfg_scale 7 adjusted to 1"));
    assert_non_null(strstr(c.err, "warning: negative_prompt ignored"));
    assert_true(png_says(f->out, "Negative prompt: \nSteps: 8, CFG scale: 1.000000"));
    assert_true(png_says(f->out, "Size: 512x512"));
    assert_true(png_says(f->out, "Sampler: euler sgm_uniform"));
    sd_child_free(&c);
    unlink(f->out);

    /* Nothing given: the model's size and steps, reported in the JSON. */
    const char *plain[] = {"image", "a cat", "-m", "light", "-o", f->out, "--json", NULL};
    run_ok(&c, plain);
    json_t *done = last_json_line(c.out);
    assert_string_equal(json_string_value(json_object_get(done, "state")), "succeeded");
    json_t *ms = json_object_get(json_object_get(done, "model_settings"), "settings");
    assert_int_equal(json_integer_value(json_object_get(ms, "steps")), 4);
    assert_int_equal(json_integer_value(json_object_get(ms, "width")), 1024);
    assert_int_equal(json_array_size(json_object_get(done, "warnings")), 0);
    assert_int_equal(json_integer_value(json_object_get(done, "width")), 1024);
    json_decref(done);
    assert_true(png_says(f->out, "Steps: 4, CFG scale: 1.000000"));
    assert_true(png_says(f->out, "Size: 1024x1024"));
    sd_child_free(&c);
    unlink(f->out);
}

/* Strict: refused with the field and the range, before sd-cli runs. */
static void test_strict_refused_before_sd_cli(void **state)
{
    struct fx *f = *state;
    sd_child c;
    add_lightning(f);
    const char *strict[] = {"image",   "a cat", "-m",       "light",  "-o", f->out,
                            "--steps", "30",    "--policy", "strict", NULL};
    assert_int_equal(run(&c, strict), 1);
    assert_non_null(strstr(c.err, "steps 30: SDXL Lightning supports 1..8 (default 4)"));
    assert_int_equal(access(pid_file, F_OK), -1); /* sd-cli never started */
    assert_int_equal(access(f->out, F_OK), -1);
    sd_child_free(&c);

    const char *strict_json[] = {"image", "a cat", "-m",       "light",  "-o",     f->out,
                                 "--cfg", "4",     "--policy", "strict", "--json", NULL};
    assert_int_equal(run(&c, strict_json), 1);
    json_t *done = last_json_line(c.out);
    assert_string_equal(json_string_value(json_object_get(done, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(done, "error")),
                           "cfg_scale 4: SDXL Lightning supports 1..1"));
    json_decref(done);
    assert_int_equal(access(pid_file, F_OK), -1);
    sd_child_free(&c);

    /* Within the range, strict runs. */
    const char *fine[] = {"image", "a cat",  "-m",      "light",    "-o",     f->out, "--steps",
                          "2",     "--size", "512x512", "--policy", "strict", NULL};
    run_ok(&c, fine);
    assert_true(png_says(f->out, "Steps: 2,"));
    assert_int_equal(access(pid_file, F_OK), 0);
    unlink(pid_file);
    unlink(f->out);
    sd_child_free(&c);
}

/* The registry's override changes what a request that says nothing gets. */
static void test_override_changes_defaults(void **state)
{
    struct fx *f = *state;
    sd_child c;
    add_lightning(f);
    const char *set[] = {"settings", "light", "steps=6", "size=768x512", NULL};
    run_ok(&c, set);
    sd_child_free(&c);
    const char *img[] = {"image", "a cat", "-m", "light", "-o", f->out, NULL};
    run_ok(&c, img);
    assert_non_null(strstr(c.err, "SDXL Lightning: 768x512, 6 steps, cfg 1"));
    assert_true(png_says(f->out, "Steps: 6, CFG scale: 1.000000"));
    assert_true(png_says(f->out, "Size: 768x512"));
    sd_child_free(&c);
    unlink(f->out);
    /* The same file by path has no registry row: the built-in 4 steps. */
    const char *by_path[] = {"image", "a cat",  "-m",      f->lightning, "-o",
                             f->out,  "--size", "512x512", NULL};
    run_ok(&c, by_path);
    assert_true(png_says(f->out, "Steps: 4,"));
    sd_child_free(&c);
    unlink(f->out);
}

/* A component missing: refused at add and at image time, before sd-cli
 * runs, naming the role and its flag; the full set runs with Flux's own
 * settings (distilled guidance clamped to its range). */
static void test_missing_component(void **state)
{
    struct fx *f = *state;
    sd_child c;
    const char *add[] = {"add",     f->flux,  "--kind", "diffusion", "--clip-l",
                         f->clip_l, "--name", "flux",   NULL};
    assert_int_equal(run(&c, add), 1);
    assert_non_null(strstr(c.err, "Flux needs more components: missing t5xxl"));
    assert_non_null(strstr(c.err, "role t5xxl"));
    assert_non_null(strstr(c.err, "role vae"));
    sd_child_free(&c);
    const char *show[] = {"show", "flux", NULL};
    assert_int_equal(run(&c, show), 1); /* nothing was registered */
    sd_child_free(&c);

    const char *img[] = {"image", "a fox",    "--diffusion-model",
                         f->flux, "--clip-l", f->clip_l,
                         "--vae", f->vae,     "-o",
                         f->out,  NULL};
    assert_int_equal(run(&c, img), 1);
    assert_non_null(strstr(c.err, "Flux needs a component: missing t5xxl"));
    assert_non_null(strstr(c.err, "sd-cli --t5xxl"));
    assert_int_equal(access(pid_file, F_OK), -1);
    sd_child_free(&c);

    const char *add_all[] = {"add",     f->flux,   "--kind", "diffusion", "--clip-l",
                             f->clip_l, "--t5xxl", f->t5,    "--vae",     f->vae,
                             "--name",  "flux",    NULL};
    run_ok(&c, add_all);
    assert_non_null(strstr(c.out, "family: Flux base"));
    sd_child_free(&c);
    const char *run_flux[] = {"image",      "a fox", "-m",     "flux",    "-o",     f->out,
                              "--guidance", "12",    "--size", "512x512", "--json", NULL};
    run_ok(&c, run_flux);
    json_t *done = last_json_line(c.out);
    json_t *ms = json_object_get(json_object_get(done, "model_settings"), "settings");
    assert_true(json_real_value(json_object_get(ms, "guidance")) == 10.0);
    assert_true(json_real_value(json_object_get(ms, "cfg_scale")) == 1.0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(done, "warnings"), 0), "field")),
                        "guidance");
    json_decref(done);
    assert_true(png_says(f->out, "Steps: 20, CFG scale: 1.000000"));
    assert_true(png_says(f->out, "Sampler: euler discrete"));
    sd_child_free(&c);
    unlink(f->out);
    unlink(pid_file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_show_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_applies_and_adjusts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_refused_before_sd_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_override_changes_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_component, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
