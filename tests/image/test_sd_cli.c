/*
 * test_sd_cli.c - runs sd-cli as a real process and checks the contract
 * (contracts/stable-diffusion-cpp.md): streams, progress, PNG files, exit
 * statuses, failure texts; with the fake, also every switch and the fake GPU
 * (the original failure: the text encoder on an 8 GB GPU runs out of memory,
 * --backend te=cpu makes the same job fit).
 *
 * The contract checks run against the fake always, and against a real sd-cli
 * when GENAI_SD_CLI and GENAI_SD_MODEL (an SD 1.x checkpoint) are set.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "image/binary.h"
#include "image/failure.h"
#include "image/png.h"
#include "image/progress.h"
#include "image/request.h"
#include "sd_spawn.h"
#include "testutil/testutil.h"
#include "sys/fakegpu.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RUN_MS 60000
#define GIB (1024ull * 1024 * 1024)

struct target {
    char bin[PATH_MAX];
    char model[PATH_MAX];
    int fake;
};

static struct target fake_target, real_target;
static char tmp_root[128];
static char gpu_file[PATH_MAX];
static char gpu_env[PATH_MAX + 32];

/* ----------------------------------------------------------------- helpers */

static int run(sd_child *c, const char *const *argv, const char *const *env)
{
    int rc = sd_child_run(c, argv, env, RUN_MS);
    if (rc < 0)
        fail_msg("running %s: %s", argv[0], strerror(-rc));
    return rc;
}

/* Lines of a captured stream, split on CR and LF as the supervisor does. */
struct lines {
    const char *v[4096];
    size_t len[4096];
    size_t n;
};

static void split(const char *text, struct lines *l)
{
    l->n = 0;
    const char *s = text;
    while (*s && l->n < 4096) {
        size_t n = strcspn(s, "\r\n");
        if (n > 0) {
            l->v[l->n] = s;
            l->len[l->n] = n;
            l->n++;
        }
        s += n;
        if (*s)
            s++;
    }
}

static img_failure classify(const sd_child *c, struct lines *all)
{
    struct lines o, e;
    split(c->out, &o);
    split(c->err, &e);
    all->n = 0;
    for (size_t i = 0; i < o.n; i++) {
        all->v[all->n] = o.v[i];
        all->len[all->n++] = o.len[i];
    }
    for (size_t i = 0; i < e.n && all->n < 4096; i++) {
        all->v[all->n] = e.v[i];
        all->len[all->n++] = e.len[i];
    }
    return img_failure_classify(c->exited, c->exit_code, c->term_signal, all->v, all->len, all->n);
}

static enum img_cause cause_of(const sd_child *c)
{
    struct lines *all = mem_alloc(sizeof(*all));
    assert_non_null(all);
    img_failure f = classify(c, all);
    mem_free(all);
    return f.cause;
}

static void feed(img_progress *p, const char *out, int *step_bars, int *load_bars)
{
    struct lines *l = mem_alloc(sizeof(*l));
    assert_non_null(l);
    split(out, l);
    for (size_t i = 0; i < l->n; i++) {
        enum img_line_kind k = img_progress_feed(p, l->v[i], l->len[i]);
        if (k == IMG_LINE_STEP_BAR && step_bars)
            (*step_bars)++;
        if (k == IMG_LINE_LOAD_BAR && load_bars)
            (*load_bars)++;
    }
    mem_free(l);
}

static void make_workdir(char *out, size_t outsz)
{
    genai_error e;
    if (img_workdir_create(tmp_root, out, outsz, &e) < 0)
        fail_msg("workdir: %s", e.detail);
}

static void remove_workdir(const char *dir)
{
    genai_error e;
    assert_int_equal(img_workdir_remove(dir, &e), 0);
}

static img_request tiny_request(const struct target *t)
{
    img_request r;
    memset(&r, 0, sizeof(r));
    r.model = (char *)t->model;
    r.prompt = "a lovely cat";
    r.width = r.height = 64;
    r.steps = 2;
    r.has_seed = 1;
    r.seed = 42;
    r.sampler = "euler_a";
    r.threads = 2;
    return r;
}

static void check_png(const char *path, uint32_t w, uint32_t h)
{
    uint8_t *data = NULL;
    size_t len = 0;
    img_png_info info;
    genai_error e;
    if (img_png_read_file(path, 0, &data, &len, &info, &e) < 0)
        fail_msg("%s: %s", path, e.detail);
    assert_int_equal(info.width, w);
    assert_int_equal(info.height, h);
    mem_free(data);
}

static int contains(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

/* ---------------------------------------------------------- contract checks */

static void check_version(const struct target *t)
{
    sd_child c;
    const char *argv[] = {t->bin, "--version", NULL};
    run(&c, argv, NULL);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 0);
    img_sd_version v;
    genai_error e;
    if (img_version_parse(c.out, c.out_len, &v, &e) < 0)
        fail_msg("version: %s in '%s'", e.detail, c.out);
    assert_true(v.count >= IMG_SD_MIN_COUNT);
    assert_int_equal(c.err_len, 0);
    sd_child_free(&c);
}

static void check_generate(const struct target *t, uint32_t batch)
{
    char dir[PATH_MAX];
    make_workdir(dir, sizeof(dir));
    img_request r = tiny_request(t);
    r.batch_count = batch;
    img_argv a;
    genai_error e;
    assert_int_equal(img_argv_build(&r, NULL, t->bin, dir, &a, &e), 0);
    sd_child c;
    run(&c, (const char *const *)a.argv, NULL);
    img_argv_free(&a);
    if (!c.exited || c.exit_code != 0)
        fail_msg("status %d/%d, stderr: %s", c.exit_code, c.term_signal, c.err);
    /* Only [ERROR] lines go to stderr; a good run has none. */
    assert_int_equal(c.err_len, 0);
    img_progress p;
    img_progress_init(&p, batch, 2);
    int step_bars = 0, load_bars = 0;
    feed(&p, c.out, &step_bars, &load_bars);
    assert_int_equal(p.stage, IMG_STAGE_DONE);
    assert_int_equal(p.percent, 100);
    assert_int_equal(p.images, batch);
    assert_int_equal(p.image, batch);
    assert_int_equal(p.steps, 2);
    assert_int_equal(step_bars, 2 * (int)batch); /* step 0 is never printed */
    assert_true(load_bars >= 3);                 /* lazy: TE, UNet, VAE weights */
    assert_int_equal(p.seed, 42 + (int64_t)batch - 1);
    assert_int_equal(p.saved, batch);
    assert_int_equal(p.width, 64);
    assert_true(contains(c.out, batch == 1 ? "decoding 1 latents" : "decoding 2 latents"));
    assert_true(contains(c.out, "\x1b[K\n"));    /* last bar ends the line */
    assert_true(contains(c.out, "\x1b[K\r  |")); /* earlier ones only CR */
    assert_int_equal(cause_of(&c), IMG_CAUSE_NONE);
    for (uint32_t i = 0; i < batch; i++) {
        char path[PATH_MAX + 32];
        assert_int_equal(img_output_path(dir, batch, i, path, sizeof(path)), 0);
        check_png(path, 64, 64);
    }
    sd_child_free(&c);
    remove_workdir(dir);
}

static void check_bad_arguments(const struct target *t)
{
    sd_child c;
    /* unknown argument */
    const char *a1[] = {t->bin, "-m", t->model, "-p", "x", "--bogus-flag", NULL};
    run(&c, a1, NULL);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "[ERROR] "));
    assert_true(contains(c.err, "error: unknown argument: --bogus-flag\n"));
    assert_true(contains(c.out, "Usage: "));
    assert_int_equal(cause_of(&c), IMG_CAUSE_BAD_ARGUMENT);
    sd_child_free(&c);
    /* a removed flag is unknown now */
    const char *a2[] = {t->bin, "-m", t->model, "-p", "x", "--schedule", "discrete", NULL};
    run(&c, a2, NULL);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "error: unknown argument: --schedule"));
    sd_child_free(&c);
    /* the old mode name */
    const char *a3[] = {t->bin, "-M", "txt2img", "-m", t->model, "-p", "x", NULL};
    run(&c, a3, NULL);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "error: invalid mode txt2img, must be one of [img_gen, "
                                "adetailer, vid_gen, convert, upscale, metadata]"));
    assert_int_equal(cause_of(&c), IMG_CAUSE_BAD_ARGUMENT);
    sd_child_free(&c);
    /* a bad enum value */
    const char *a4[] = {t->bin, "-m", t->model, "-p", "x", "--sampling-method", "nope", NULL};
    run(&c, a4, NULL);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "error: invalid sample method nope\n"));
    assert_true(contains(c.err, "error: invalid parameter for argument: --sampling-method\n"));
    sd_child_free(&c);
    /* a non-numeric int: an uncaught std::invalid_argument, SIGABRT */
    const char *a5[] = {t->bin, "-m", t->model, "-p", "x", "--steps", "abc", NULL};
    run(&c, a5, NULL);
    assert_false(c.exited);
    assert_int_equal(c.term_signal, SIGABRT);
    assert_true(contains(c.err, "terminate called after throwing an instance of "
                                "'std::invalid_argument'"));
    assert_true(contains(c.err, "  what():  stoi"));
    assert_int_equal(cause_of(&c), IMG_CAUSE_BAD_ARGUMENT);
    sd_child_free(&c);
    /* no model */
    const char *a6[] = {t->bin, "-p", "x", NULL};
    run(&c, a6, NULL);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "error: the following arguments are required: "
                                "model_path/diffusion_model"));
    sd_child_free(&c);
}

static void check_missing_model(const struct target *t)
{
    char missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/no-such-model.safetensors", tmp_root);
    sd_child c;
    const char *argv[] = {t->bin, "-m", missing, "-p", "x", "-W", "64", "-H", "64", NULL};
    run(&c, argv, NULL);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 1);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "init model loader from file failed: '%s'\n", missing);
    assert_true(contains(c.err, want));
    snprintf(want, sizeof(want), "get sd version from file failed: '%s'\n", missing);
    assert_true(contains(c.err, want));
    /* Context on stdout: the WARN and sd-cli's INFO (not ERROR) line. */
    assert_true(contains(c.out, "[WARN ] "));
    assert_true(contains(c.out, " not found\n"));
    assert_true(contains(c.out, "[INFO ] "));
    assert_true(contains(c.out, " - new_sd_ctx_t failed\n"));
    assert_false(contains(c.err, "[INFO ]"));
    assert_int_equal(cause_of(&c), IMG_CAUSE_MODEL_MISSING);
    sd_child_free(&c);
}

static void check_alignment_and_output_dir(const struct target *t)
{
    char dir[PATH_MAX], out[PATH_MAX + 32];
    make_workdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/a.png", dir);
    sd_child c;
    const char *argv[] = {t->bin, "-m",      t->model, "-p", "x", "-W", "100", "-H",
                          "100",  "--steps", "1",      "-t", "2", "-o", out,   NULL};
    run(&c, argv, NULL);
    assert_int_equal(c.exit_code, 0);
    assert_true(contains(c.out, "align generation request up 100x100 to 128x128 (multiple=64)\n"));
    assert_true(contains(c.out, " - generate_image 128x128\n"));
    check_png(out, 128, 128);
    sd_child_free(&c);
    remove_workdir(dir);

    /* The output directory cannot be created: the error comes after generating. */
    const char *bad[] = {t->bin, "-m", t->model, "-p", "x",
                         "-W",   "64", "-H",     "64", "--steps",
                         "1",    "-t", "2",      "-o", "/proc/nope/out.png",
                         NULL};
    run(&c, bad, NULL);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "failed to create directory '/proc/nope': "));
    assert_true(contains(c.out, "generate_image completed in "));
    assert_int_equal(cause_of(&c), IMG_CAUSE_OUTPUT);
    sd_child_free(&c);
}

static void run_contract(const struct target *t)
{
    check_version(t);
    check_generate(t, 1);
    check_generate(t, 2);
    check_bad_arguments(t);
    check_missing_model(t);
    check_alignment_and_output_dir(t);
}

static void test_contract_fake(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    run_contract(&fake_target);
    assert_int_equal(tu_fd_count(), fds);
}

static void test_contract_real(void **state)
{
    (void)state;
    if (real_target.bin[0] == '\0') {
        print_message("skipped: set GENAI_SD_CLI (an sd-cli) and GENAI_SD_MODEL (an SD 1.x "
                      "checkpoint) to run the contract checks against a real build\n");
        skip();
    }
    run_contract(&real_target);
}

/* --------------------------------------------------------------- fake only */

/* The number after `key` in text (e.g. "unet compute buffer size: "). */
static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        fail_msg("no '%s' in output", key);
    return strtod(p + strlen(key), NULL);
}

static void run_fake(sd_child *c, const char *size, const char *extra1, const char *extra2,
                     const char *out)
{
    const char *argv[] = {fake_target.bin,
                          "-m",
                          fake_target.model,
                          "-p",
                          "x",
                          "-W",
                          size,
                          "-H",
                          size,
                          "--steps",
                          "1",
                          "-v",
                          "-o",
                          out,
                          extra1,
                          extra2,
                          NULL};
    run(c, argv, NULL);
    if (c->exit_code != 0)
        fail_msg("fake failed: %s", c->err);
}

static void test_memory_lines(void **state)
{
    (void)state;
    char dir[PATH_MAX], out[PATH_MAX + 32];
    make_workdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/m.png", dir);
    sd_child c;
    run_fake(&c, "64", NULL, NULL, out);
    /* The params line of the contract, byte for byte (no GPU: all RAM). */
    assert_true(contains(c.out, "[INFO ] stable-diffusion.cpp:1745 - total params memory size = "
                                "326.07MB (VRAM 0.00MB, RAM 326.07MB): text_encoders "
                                "235.06MB(RAM), diffusion_model 19.85MB(RAM), vae 71.15MB(RAM), "
                                "controlnet 0.00MB(N/A), extensions 0.00MB(N/A)\n"));
    assert_true(contains(c.out, "[DEBUG] model_manager.cpp:406  - model manager prepared params "
                                "backend buffer (235.06 MB, 196 tensors, RAM)\n"));
    assert_true(contains(c.out, "clip compute buffer size: 1.42 MB(RAM)\n"));
    assert_true(contains(c.out, "unet compute buffer size: 0.96 MB(RAM)\n"));
    assert_true(contains(c.out, "vae compute buffer size: 6.50 MB(RAM)\n"));
    sd_child_free(&c);

    /* memory.md §9.2 at other sizes: within 1 % of the observed figures. */
    static const struct {
        const char *size, *flag, *key;
        double want;
    } rows[] = {
        {"256", NULL, "unet compute buffer size: ", 33.85},
        {"256", NULL, "vae compute buffer size: ", 104.02},
        {"512", NULL, "unet compute buffer size: ", 517.30},
        {"512", NULL, "vae compute buffer size: ", 416.06},
        {"512", "--diffusion-fa", "unet compute buffer size: ", 12.82},
        {"512", "--vae-tiling", "vae compute buffer size: ", 104.02},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        run_fake(&c, rows[i].size, rows[i].flag, NULL, out);
        double got = number_after(c.out, rows[i].key);
        if (got < rows[i].want * 0.99 || got > rows[i].want * 1.01)
            fail_msg("%s %s %s: %.2f, want %.2f", rows[i].size, rows[i].flag ? rows[i].flag : "",
                     rows[i].key, got, rows[i].want);
        sd_child_free(&c);
    }
    /* Tiles: with --vae-tiling the VAE prints '=' bars after "decoding". */
    run_fake(&c, "512", "--vae-tiling", NULL, out);
    img_progress p;
    img_progress_init(&p, 1, 1);
    struct lines *l = mem_alloc(sizeof(*l));
    split(c.out, l);
    int tiles = 0;
    for (size_t i = 0; i < l->n; i++)
        tiles += img_progress_feed(&p, l->v[i], l->len[i]) == IMG_LINE_TILE_BAR;
    mem_free(l);
    assert_true(tiles > 0);
    assert_int_equal(p.stage, IMG_STAGE_DONE);
    sd_child_free(&c);
    remove_workdir(dir);
}

static void test_output_names(void **state)
{
    (void)state;
    char dir[PATH_MAX], out[PATH_MAX + 32], want[PATH_MAX + 64];
    make_workdir(dir, sizeof(dir));
    sd_child c;
    /* An unknown extension gets ".png" appended. */
    snprintf(out, sizeof(out), "%s/out.bmp", dir);
    const char *a1[] = {fake_target.bin,
                        "-m",
                        fake_target.model,
                        "-p",
                        "x",
                        "-W",
                        "64",
                        "-H",
                        "64",
                        "--steps",
                        "1",
                        "-o",
                        out,
                        NULL};
    run(&c, a1, NULL);
    assert_int_equal(c.exit_code, 0);
    snprintf(want, sizeof(want), "%s/out.bmp.png", dir);
    check_png(want, 64, 64);
    assert_int_equal(unlink(want), 0);
    sd_child_free(&c);
    /* Batches: <base>_<i><ext> from --output-begin-idx; %03d formats the index. */
    snprintf(out, sizeof(out), "%s/b.png", dir);
    const char *a2[] = {fake_target.bin,
                        "-m",
                        fake_target.model,
                        "-p",
                        "x",
                        "-W",
                        "64",
                        "-H",
                        "64",
                        "--steps",
                        "1",
                        "-b",
                        "2",
                        "--output-begin-idx",
                        "5",
                        "-o",
                        out,
                        NULL};
    run(&c, a2, NULL);
    assert_int_equal(c.exit_code, 0);
    assert_true(contains(c.out, "generating image: 2/2 - seed 43\n"));
    assert_true(contains(c.out, " - 2/2 images saved\n"));
    for (int i = 5; i <= 6; i++) {
        snprintf(want, sizeof(want), "%s/b_%d.png", dir, i);
        check_png(want, 64, 64);
    }
    sd_child_free(&c);
    snprintf(out, sizeof(out), "%s/s_%%03d.png", dir);
    const char *a3[] = {fake_target.bin,
                        "-m",
                        fake_target.model,
                        "-p",
                        "x",
                        "-W",
                        "64",
                        "-H",
                        "64",
                        "--steps",
                        "1",
                        "-b",
                        "2",
                        "-o",
                        out,
                        NULL};
    run(&c, a3, NULL);
    assert_int_equal(c.exit_code, 0);
    snprintf(want, sizeof(want), "%s/s_001.png", dir);
    check_png(want, 64, 64);
    sd_child_free(&c);
    /* The deprecated --clip-on-cpu is accepted without a warning. */
    snprintf(out, sizeof(out), "%s/d.png", dir);
    const char *a4[] = {fake_target.bin, "-m", fake_target.model, "-p", "x", "-W", "64", "-H", "64",
                        "--steps",       "1",  "--clip-on-cpu",   "-o", out, NULL};
    run(&c, a4, NULL);
    assert_int_equal(c.exit_code, 0);
    assert_false(contains(c.out, "deprecated"));
    assert_false(contains(c.out, "[WARN ]"));
    sd_child_free(&c);
    /* --increase-ref-index is, with the real Notice. */
    const char *a5[] = {
        fake_target.bin, "-m", fake_target.model,      "-p", "x", "-W", "64", "-H", "64",
        "--steps",       "1",  "--increase-ref-index", "-o", out, NULL};
    run(&c, a5, NULL);
    assert_true(contains(c.out, "[WARN ] "));
    assert_true(contains(c.out, "Notice: --increase-ref-index is deprecated. Use "
                                "--ref-image-args \"ref_index_mode=increase\" instead.\n"));
    sd_child_free(&c);
    remove_workdir(dir);
}

static void test_switches(void **state)
{
    (void)state;
    char dir[PATH_MAX], out[PATH_MAX + 32], pidfile[PATH_MAX + 32];
    make_workdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/o.png", dir);
    snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
    const char *argv[] = {fake_target.bin,
                          "-m",
                          fake_target.model,
                          "-p",
                          "x",
                          "-W",
                          "64",
                          "-H",
                          "64",
                          "--steps",
                          "3",
                          "-o",
                          out,
                          NULL};
    sd_child c;

    /* Crash at step 2 by signal: steps 1 printed, not 2, no image. */
    const char *e1[] = {"FAKE_SD_CRASH_AT_STEP=2", NULL};
    run(&c, argv, e1);
    assert_false(c.exited);
    assert_int_equal(c.term_signal, SIGSEGV);
    assert_true(contains(c.out, "| 1/3 - "));
    assert_false(contains(c.out, "| 2/3 - "));
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(cause_of(&c), IMG_CAUSE_CRASH);
    sd_child_free(&c);
    /* ... or with an exit code. */
    const char *e2[] = {"FAKE_SD_CRASH_AT_STEP=1", "FAKE_SD_CRASH_EXIT=3", NULL};
    run(&c, argv, e2);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 3);
    assert_int_equal(cause_of(&c), IMG_CAUSE_UNKNOWN);
    sd_child_free(&c);
    const char *e2b[] = {"FAKE_SD_CRASH_AT_STEP=1", "FAKE_SD_CRASH_SIGNAL=6", NULL};
    run(&c, argv, e2b);
    assert_int_equal(c.term_signal, SIGABRT);
    sd_child_free(&c);

    /* Hang at step 2 and the pid file: SIGTERM kills it (143, no handler). */
    const char *e3[] = {"FAKE_SD_HANG_AT_STEP=2", NULL};
    char pidenv[PATH_MAX + 64];
    snprintf(pidenv, sizeof(pidenv), "FAKE_SD_PID_FILE=%s", pidfile);
    const char *e3p[] = {e3[0], pidenv, NULL};
    assert_int_equal(sd_child_start(&c, argv, e3p), 0);
    assert_int_equal(sd_child_read_until(&c, "| 1/3 - ", RUN_MS), 1);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_int_equal(pid, c.pid);
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    assert_false(c.exited);
    assert_int_equal(c.term_signal, SIGTERM);
    assert_false(contains(c.out, "| 2/3 - "));
    assert_int_equal(access(out, F_OK), -1); /* partial output is not written */
    assert_int_equal(cause_of(&c), IMG_CAUSE_KILLED);
    sd_child_free(&c);
    unlink(pidfile);

    /* Slow steps: the speed is measured, so 60 ms steps print at most 16.67 it/s,
     * and a step over a second prints s/it. */
    const char *e4[] = {"FAKE_SD_STEP_MS=60", NULL};
    run(&c, argv, e4);
    assert_int_equal(c.exit_code, 0);
    img_progress p;
    img_progress_init(&p, 1, 3);
    struct lines *l = mem_alloc(sizeof(*l));
    split(c.out, l);
    int bars = 0;
    for (size_t i = 0; i < l->n; i++) {
        img_bar b;
        if (img_bar_parse(l->v[i], l->len[i], &b) == 0 && !b.loading) {
            bars++;
            assert_string_equal(b.unit, "it/s");
            assert_true(b.speed <= 16.67);
        }
    }
    mem_free(l);
    assert_int_equal(bars, 3);
    sd_child_free(&c);
    const char *slow_argv[] = {fake_target.bin,
                               "-m",
                               fake_target.model,
                               "-p",
                               "x",
                               "-W",
                               "64",
                               "-H",
                               "64",
                               "--steps",
                               "1",
                               "-o",
                               out,
                               NULL};
    const char *e5[] = {"FAKE_SD_STEP_MS=1010", NULL};
    run(&c, slow_argv, e5);
    assert_true(contains(c.out, "s/it\x1b[K\n"));
    sd_child_free(&c);
    remove_workdir(dir);
}

static void test_old_build_spelling(void **state)
{
    (void)state;
    /* A build before master-611 refuses --backend; the argv builder, told the
     * version by --version, spells the placement the old way and it works. */
    const char *env[] = {"FAKE_SD_VERSION=master-600-abcdef0", NULL};
    sd_child c;
    const char *v[] = {fake_target.bin, "--version", NULL};
    run(&c, v, env);
    img_sd_version ver;
    assert_int_equal(img_version_parse(c.out, c.out_len, &ver, NULL), 0);
    assert_int_equal(ver.count, 600);
    sd_child_free(&c);

    char dir[PATH_MAX];
    make_workdir(dir, sizeof(dir));
    const char *bad[] = {fake_target.bin, "-m", fake_target.model, "-p", "x", "--backend",
                         "te=cpu",        NULL};
    run(&c, bad, env);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "error: unknown argument: --backend"));
    sd_child_free(&c);

    img_request r = tiny_request(&fake_target);
    r.te_on_cpu = 1;
    img_argv a;
    assert_int_equal(img_argv_build(&r, &ver, fake_target.bin, dir, &a, NULL), 0);
    run(&c, (const char *const *)a.argv, env);
    img_argv_free(&a);
    assert_int_equal(c.exit_code, 0);
    char png[PATH_MAX + 32];
    assert_int_equal(img_output_path(dir, 1, 0, png, sizeof(png)), 0);
    check_png(png, 64, 64);
    sd_child_free(&c);
    remove_workdir(dir);
}

/* ----------------------------------------------------------------- fake GPU */

static void make_gpu(uint64_t total, uint64_t llm_bytes)
{
    fakegpu_state st;
    memset(&st, 0, sizeof(st));
    fakegpu_device dev;
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "Fake GPU 8GB");
    snprintf(dev.uuid, sizeof(dev.uuid), "GPU-fake-0");
    dev.total_bytes = total;
    st.devices = &dev;
    st.n_devices = 1;
    genai_error e;
    if (fakegpu_write(gpu_file, &st, &e) < 0)
        fail_msg("fake GPU: %s", e.detail);
    /* The "LLM": memory held by this (live) test process. */
    if (llm_bytes > 0)
        assert_int_equal(fakegpu_try_alloc(gpu_file, 0, (int32_t)getpid(), llm_bytes, NULL, &e), 0);
}

static uint64_t gpu_used(void)
{
    fakegpu_state st;
    genai_error e;
    if (fakegpu_read(gpu_file, &st, &e) < 0)
        fail_msg("fake GPU: %s", e.detail);
    uint64_t used = st.devices[0].used_bytes;
    fakegpu_state_free(&st);
    return used;
}

static void sdxl_model(char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/image/sdxl.fake.safetensors", getenv("GENAI_TEST_DATA"));
}

static void test_gpu_text_encoder_placement(void **state)
{
    (void)state;
    char model[PATH_MAX], dir[PATH_MAX], out[PATH_MAX + 32];
    sdxl_model(model, sizeof(model));
    make_workdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/x.png", dir);
    const char *env[] = {gpu_env, NULL};
    sd_child c;

    /* An 8 GiB GPU with 1 GiB taken by the LLM: SDXL at 512x512 with the text
     * encoder on the GPU runs out of memory... */
    make_gpu(8 * GIB, 1 * GIB);
    const char *a1[] = {fake_target.bin, "-m",      model, "-p", "x", "-W", "512", "-H",
                        "512",           "--steps", "2",   "-o", out, NULL};
    run(&c, a1, env);
    assert_true(c.exited);
    assert_int_equal(c.exit_code, 1);
    assert_true(contains(c.err, "cudaMalloc failed: out of memory\n"));
    assert_true(contains(c.out, "text_encoders 1570.00MB(VRAM)"));
    assert_int_equal(cause_of(&c), IMG_CAUSE_OUT_OF_MEMORY);
    assert_int_equal(access(out, F_OK), -1);
    sd_child_free(&c);
    /* Its memory went back when it exited: only the LLM's remains. */
    assert_int_equal(gpu_used(), 1 * GIB);

    /* ...and with --backend te=cpu the same job fits. */
    const char *a2[] = {fake_target.bin, "-m", model, "-p",      "x", "-W",
                        "512",           "-H", "512", "--steps", "2", "--backend",
                        "te=cpu",        "-o", out,   NULL};
    run(&c, a2, env);
    if (c.exit_code != 0)
        fail_msg("te=cpu failed: %s", c.err);
    assert_true(contains(c.out, "text_encoders 1570.00MB(RAM), diffusion_model "
                                "4897.05MB(VRAM), vae 159.56MB(VRAM)"));
    check_png(out, 512, 512);
    assert_int_equal(cause_of(&c), IMG_CAUSE_NONE);
    sd_child_free(&c);
    assert_int_equal(gpu_used(), 1 * GIB);

    /* A bigger LLM leaves too little for the encoder's weights: ggml asserts
     * in the conditioner and the process aborts (134), still out of memory. */
    make_gpu(8 * GIB, 7 * GIB);
    run(&c, a1, env);
    assert_false(c.exited);
    assert_int_equal(c.term_signal, SIGABRT);
    assert_true(contains(c.err, "model manager alloc params backend buffer failed, size = "
                                "1570.00MB\n"));
    assert_true(contains(c.err, "GGML_ASSERT(!chunk_hidden_states.empty()) failed"));
    assert_int_equal(cause_of(&c), IMG_CAUSE_OUT_OF_MEMORY);
    sd_child_free(&c);
    /* A SIGABRTed process never released: the GPU notices the dead pid. */
    assert_int_equal(gpu_used(), 7 * GIB);

    fakegpu_release(gpu_file, (int32_t)getpid(), NULL);
    remove_workdir(dir);
}

static void test_gpu_hold_and_kill(void **state)
{
    (void)state;
    char dir[PATH_MAX], out[PATH_MAX + 32];
    make_workdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/h.png", dir);
    make_gpu(8 * GIB, 0);
    sd_child c;
    /* The memory still counts after exit for FAKE_SD_GPU_HOLD_MS. */
    const char *env[] = {gpu_env, "FAKE_SD_GPU_HOLD_MS=3000", NULL};
    const char *argv[] = {fake_target.bin,
                          "-m",
                          fake_target.model,
                          "-p",
                          "x",
                          "-W",
                          "64",
                          "-H",
                          "64",
                          "--steps",
                          "1",
                          "-o",
                          out,
                          NULL};
    run(&c, argv, env);
    assert_int_equal(c.exit_code, 0);
    sd_child_free(&c);
    assert_true(gpu_used() > 200 * 1024 * 1024); /* TE + UNet + VAE of the tiny model */
    long long deadline = tu_now_ms() + 20000;
    while (gpu_used() != 0 && tu_now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(gpu_used(), 0);

    /* SIGKILL while sampling: the dead pid's memory no longer counts. */
    const char *env2[] = {gpu_env, "FAKE_SD_HANG_AT_STEP=1", NULL};
    assert_int_equal(sd_child_start(&c, argv, env2), 0);
    assert_int_equal(sd_child_read_until(&c, "generating image: 1/1", RUN_MS), 1);
    assert_true(gpu_used() > 200 * 1024 * 1024);
    kill(c.pid, SIGKILL);
    assert_int_equal(sd_child_wait(&c, RUN_MS), 0);
    assert_int_equal(c.term_signal, SIGKILL);
    sd_child_free(&c);
    assert_int_equal(gpu_used(), 0);
    remove_workdir(dir);
}

/* ------------------------------------------------------------------- setup */

static int setup(void **state)
{
    (void)state;
    const char *build = getenv("GENAI_BUILD_DIR");
    const char *data = getenv("GENAI_TEST_DATA");
    if (build == NULL || data == NULL) {
        fprintf(stderr, "GENAI_BUILD_DIR and GENAI_TEST_DATA must be set (run through ctest)\n");
        return -1;
    }
    snprintf(fake_target.bin, sizeof(fake_target.bin), "%s/tests/doubles/sd/fake-sd-cli", build);
    snprintf(fake_target.model, sizeof(fake_target.model), "%s/image/tiny-sd1.fake.safetensors",
             data);
    fake_target.fake = 1;
    const char *rb = getenv("GENAI_SD_CLI"), *rm = getenv("GENAI_SD_MODEL");
    if (rb && rb[0] && rm && rm[0]) {
        snprintf(real_target.bin, sizeof(real_target.bin), "%s", rb);
        snprintf(real_target.model, sizeof(real_target.model), "%s", rm);
    }
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/genai-sdcli-XXXXXX");
    if (mkdtemp(tmp_root) == NULL)
        return -1;
    snprintf(gpu_file, sizeof(gpu_file), "%s/gpu.json", tmp_root);
    snprintf(gpu_env, sizeof(gpu_env), "GENAI_FAKE_GPU=%s", gpu_file);
    /* The fake must not find a GPU unless a test gives it one. */
    unsetenv("GENAI_FAKE_GPU");
    return 0;
}

/* Removes what the tests left under tmp_root, also after a failed test: the
 * fake GPU files and the work directories (files only, one level). */
static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmp_root);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char p[PATH_MAX];
            if (de->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", tmp_root, de->d_name);
            if (unlink(p) != 0)
                img_workdir_remove(p, NULL);
        }
        closedir(d);
    }
    return rmdir(tmp_root) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_fake),
        cmocka_unit_test(test_contract_real),
        cmocka_unit_test(test_memory_lines),
        cmocka_unit_test(test_output_names),
        cmocka_unit_test(test_switches),
        cmocka_unit_test(test_old_build_spelling),
        cmocka_unit_test(test_gpu_text_encoder_placement),
        cmocka_unit_test(test_gpu_hold_and_kill),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
