/*
 * test_runner.c - the image job runner (src/image/runner.h) against the fake
 * sd-cli run as a real process under a real libuv loop: success with PNG
 * bytes and seeds, every placement flag reaching the argv, the original
 * failure on a fake 8 GB GPU (text encoder forced on the GPU: out of memory;
 * the planner's placement: an image), crashes by signal and exit code,
 * a hang cancelled through the supervisor's escalation, real step progress,
 * failure classification, the queue bound and expiry, and no fd, process or
 * temporary directory left behind by any test.
 *
 * A real sd-cli runs too when GENAI_SD_CLI names one (not the fake) and
 * GENAI_SD_MODEL an SD 1.x checkpoint; otherwise that test is skipped.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "diffusion/dm_fixtures.h"
#include "image/png.h"
#include "image/runner.h"
#include "proc/lines.h"
#include "sys/fakegpu.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)
#define JOB_MS 60000
#define MAX_EVENTS 4096

static char fake_bin[PATH_MAX];
static char data_dir[1024];

/* ----------------------------------------------------------------- harness */

struct h {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run while waiting on a condition */
    img_runner *r;
    char root[1024];
    char work[PATH_MAX];
    char logs[2048];
    char gpu[PATH_MAX];
    int fds_before;
    img_progress progress[MAX_EVENTS];
    uint64_t progress_job[MAX_EVENTS];
    size_t n_progress;
    uint64_t state_job[64];
    enum img_job_state states[64];
    size_t n_states;
};

static void on_progress(void *arg, img_runner *r, const img_job *j)
{
    (void)r;
    struct h *h = arg;
    if (h->n_progress < MAX_EVENTS) {
        h->progress[h->n_progress] = j->progress;
        h->progress_job[h->n_progress++] = j->id;
    }
}

static void on_state(void *arg, img_runner *r, const img_job *j)
{
    (void)r;
    struct h *h = arg;
    if (h->n_states < 64) {
        h->states[h->n_states] = j->state;
        h->state_job[h->n_states++] = j->id;
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Starts a harness; opts may be NULL (defaults). GENAI_FAKE_GPU is never set
 * unless the test makes a fake GPU (make_gpu). */
static void h_start(struct h *h, const img_runner_opts *opts)
{
    memset(h, 0, sizeof(*h));
    unsetenv("GENAI_FAKE_GPU");
    h->fds_before = tu_fd_count();
    const char *tmp = getenv("TMPDIR");
    snprintf(h->root, sizeof(h->root), "%s/genai-runner-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    assert_non_null(mkdtemp(h->root));
    snprintf(h->work, sizeof(h->work), "%s/work", h->root);
    snprintf(h->logs, sizeof(h->logs), "%s/logs", h->root);
    assert_int_equal(mkdir(h->work, 0700), 0);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, on_tick, 10, 10);
    img_runner_opts o;
    if (opts != NULL)
        o = *opts;
    else
        memset(&o, 0, sizeof(o));
    if (o.sd_cli == NULL)
        o.sd_cli = fake_bin;
    o.work_parent = h->work;
    o.log_dir = h->logs;
    o.on_progress = on_progress;
    o.on_state = on_state;
    o.arg = h;
    /* The machine's own GPUs must not change the plan: no providers but the
     * fake one, and that only when a test makes it. */
    probe_options po = {
        .fake_gpu_path = h->gpu[0] ? h->gpu : "", .ignore_env = 1, .providers = 0x80};
    if (o.probe == NULL)
        o.probe = &po;
    genai_error e;
    if (img_runner_new(&h->loop, &o, &h->r, &e) < 0)
        fail_msg("img_runner_new: %s", e.detail);
}

/* Restarts the runner with a fake GPU of total bytes, base_used of them taken. */
static void make_gpu(struct h *h, uint64_t total, uint64_t base_used)
{
    snprintf(h->gpu, sizeof(h->gpu), "%s/gpu.json", h->root);
    fakegpu_device dev;
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.name, sizeof(dev.name), "Fake GPU");
    dev.total_bytes = total;
    dev.base_used_bytes = base_used;
    fakegpu_state st = {.devices = &dev, .n_devices = 1};
    genai_error e;
    if (fakegpu_write(h->gpu, &st, &e) < 0)
        fail_msg("fake GPU: %s", e.detail);
    setenv("GENAI_FAKE_GPU", h->gpu, 1);
}

static void h_new_runner(struct h *h, const img_runner_opts *opts)
{
    img_runner_free(h->r);
    h->r = NULL;
    uv_run(&h->loop, UV_RUN_NOWAIT);
    img_runner_opts o;
    if (opts != NULL)
        o = *opts;
    else
        memset(&o, 0, sizeof(o));
    o.sd_cli = o.sd_cli ? o.sd_cli : fake_bin;
    o.work_parent = h->work;
    o.log_dir = h->logs;
    o.on_progress = on_progress;
    o.on_state = on_state;
    o.arg = h;
    probe_options po = {
        .fake_gpu_path = h->gpu[0] ? h->gpu : "", .ignore_env = 1, .providers = 0x80};
    o.probe = &po;
    genai_error e;
    if (img_runner_new(&h->loop, &o, &h->r, &e) < 0)
        fail_msg("img_runner_new: %s", e.detail);
}

/* Frees the runner, checks that nothing is left: no child to reap, no
 * output directory, no fd. */
static void h_stop(struct h *h)
{
    img_runner_free(h->r);
    uv_close((uv_handle_t *)&h->tick, NULL);
    while (uv_run(&h->loop, UV_RUN_NOWAIT) != 0) {
    }
    assert_int_equal(uv_loop_close(&h->loop), 0);
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(tu_dir_entries(h->work), 0);
    tu_rm_rf(h->root);
    unsetenv("GENAI_FAKE_GPU");
    assert_int_equal(tu_fd_count(), h->fds_before);
}

static int job_finished(const img_job *j)
{
    return j == NULL || j->state == IMG_JOB_SUCCEEDED || j->state == IMG_JOB_FAILED ||
           j->state == IMG_JOB_CANCELLED;
}

/* Runs the loop until job id has finished (or disappeared), with a deadline. */
static const img_job *wait_done(struct h *h, uint64_t id)
{
    int64_t deadline = tu_now_ms() + JOB_MS;
    while (!job_finished(img_runner_job(h->r, id))) {
        if (tu_now_ms() > deadline)
            fail_msg("job %llu did not finish within %d ms", (unsigned long long)id, JOB_MS);
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    /* The directory must be gone by the time the end is announced (unless
     * the next job has already started). */
    if (img_runner_pending(h->r) == 0)
        assert_int_equal(tu_dir_entries(h->work), 0);
    return img_runner_job(h->r, id);
}

static uint64_t submit(struct h *h, const img_request *req, img_plan_mode mode,
                       const plan_sd_model *model)
{
    img_job_opts jo = {.plan = mode, .model = model};
    uint64_t id = 0;
    genai_error e;
    if (img_runner_submit(h->r, req, &jo, &id, &e) < 0)
        fail_msg("submit: %s", e.detail);
    return id;
}

static char model_path[PATH_MAX];

static img_request tiny(void)
{
    img_request r;
    memset(&r, 0, sizeof(r));
    snprintf(model_path, sizeof(model_path), "%s/image/tiny-sd1.fake.safetensors", data_dir);
    r.model = model_path;
    r.prompt = "a lovely cat";
    r.width = r.height = 64;
    r.steps = 2;
    r.has_seed = 1;
    r.seed = 42;
    return r;
}

/* The reference model's module sizes, as the fake model file gives them. */
static const plan_sd_model tiny_model = {
    .diffusion_bytes = (uint64_t)(19.85 * MIB),
    .text_encoder_bytes = (uint64_t)(235.06 * MIB),
    .vae_bytes = (uint64_t)(5.94 * MIB),
};

static char *read_log(const struct h *h)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/sd-cli.log", h->logs);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    char *buf = mem_alloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void check_pid_gone(pid_t pid)
{
    assert_true(pid > 0);
    errno = 0;
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* ------------------------------------------------------------------- tests */

struct frags {
    char v[8][128];
    size_t n;
};

static void on_frag(void *arg, const char *line, size_t len)
{
    struct frags *f = arg;
    if (f->n < 8)
        snprintf(f->v[f->n++], sizeof(f->v[0]), "%.*s", (int)len, line);
}

/* The splitter mode the runner asks for: a bar ending in ESC[K is delivered
 * when it is printed, not when the next redraw arrives. */
static void test_lines_eager_erase(void **state)
{
    (void)state;
    proc_lines pl;
    assert_int_equal(proc_lines_init(&pl, 256), 0);
    pl.eager_el = 1;
    struct frags f = {.n = 0};
    const char *a = "[INFO ] x - generating image: 1/1 - seed 42\n\r  |> | 1/2 - 1.0it/s\x1b[K";
    proc_lines_feed(&pl, a, strlen(a), on_frag, &f);
    assert_int_equal(f.n, 3); /* the log line, the empty fragment before CR, the bar */
    assert_string_equal(f.v[2], "  |> | 1/2 - 1.0it/s\x1b[K");
    const char *b = "\r  |==| 2/2 - 1.0it/s\x1b[K\n[INFO ] x - sampling completed\r\n";
    proc_lines_feed(&pl, b, strlen(b), on_frag, &f);
    assert_int_equal(f.n, 5); /* no empty line after either bar's terminator */
    assert_string_equal(f.v[3], "  |==| 2/2 - 1.0it/s\x1b[K");
    assert_string_equal(f.v[4], "[INFO ] x - sampling completed");
    proc_lines_free(&pl);
}

static void test_success(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    img_request req = tiny();
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    /* The job starts from the loop, never inside submit. */
    assert_int_equal(img_runner_job(h.r, id)->state, IMG_JOB_QUEUED);
    const img_job *j = wait_done(&h, id);
    const img_run_info *in = img_runner_info(h.r, id);
    if (j->state != IMG_JOB_SUCCEEDED)
        fail_msg("job failed: %s", j->error);
    assert_int_equal(j->n_results, 1);
    assert_int_equal(j->results[0].width, 64);
    assert_int_equal(j->results[0].height, 64);
    assert_int_equal(j->results[0].seed, 42);
    img_png_info pi;
    genai_error e;
    assert_int_equal(img_png_parse(j->results[0].png, j->results[0].png_len, &pi, &e), 0);
    assert_int_equal(pi.width, 64);
    assert_int_equal(j->progress.percent, 100);
    assert_true(j->finished_ms >= j->started_ms);
    assert_non_null(in);
    assert_true(in->ended && in->exited && in->exit_code == 0);
    assert_int_equal(in->pid, 0);
    assert_string_equal(in->placement_str, "cpu-only");
    assert_non_null(strstr(in->cmdline, "-s 42"));
    assert_non_null(strstr(in->cmdline, "'a lovely cat'"));
    /* Events: running, then succeeded; progress reached 100. */
    assert_true(h.n_states >= 2);
    assert_int_equal(h.states[0], IMG_JOB_RUNNING);
    assert_int_equal(h.states[h.n_states - 1], IMG_JOB_SUCCEEDED);
    assert_true(h.n_progress > 0);
    assert_int_equal(h.progress[h.n_progress - 1].percent, 100);
    h_stop(&h);
}

static void test_batch_and_random_seed(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    img_request req = tiny();
    req.batch_count = 3;
    req.has_seed = 0;
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, NULL); /* sizes from the files */
    int64_t seed = img_runner_job(h.r, id)->req.seed;    /* drawn at submit */
    assert_true(seed >= 0);
    const img_job *j = wait_done(&h, id);
    if (j->state != IMG_JOB_SUCCEEDED)
        fail_msg("job failed: %s", j->error);
    assert_int_equal(j->n_results, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(j->results[i].seed, seed + i);
        img_png_info pi;
        genai_error e;
        assert_int_equal(img_png_parse(j->results[i].png, j->results[i].png_len, &pi, &e), 0);
    }
    /* Different seeds, different pixels. */
    assert_false(j->results[0].png_len == j->results[1].png_len &&
                 memcmp(j->results[0].png, j->results[1].png, j->results[0].png_len) == 0);
    h_stop(&h);
}

struct flag_case {
    int te, vae, tiling, offload, fa;
    const char *argv_has;
    const char *log_has; /* in sd-cli's output, with a 24 GB fake GPU */
};

static void test_placement_flags_reach_argv(void **state)
{
    (void)state;
    static const struct flag_case cases[] = {
        {1, 0, 0, 0, 0, " --backend te=cpu ",
         "text_encoders 235.06MB(RAM), diffusion_model "
         "19.85MB(VRAM)"},
        {0, 1, 0, 0, 0, " --backend vae=cpu ", "vae 71.15MB(RAM)"},
        {1, 1, 0, 0, 0, " --backend te=cpu,vae=cpu ", "text_encoders 235.06MB(RAM)"},
        {0, 0, 1, 0, 0, " --vae-tiling ",
         "|==================================================| 1/1"},
        {0, 0, 0, 1, 0, " --offload-to-cpu ", "(VRAM 0.00MB, RAM 326.07MB)"},
        {0, 0, 0, 0, 1, " --diffusion-fa ", "unet compute buffer size: 0.95 MB(VRAM)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct flag_case *c = &cases[i];
        struct h h;
        memset(&h, 0, sizeof(h));
        h_start(&h, NULL);
        make_gpu(&h, 24 * GIB, 0);
        h_new_runner(&h, NULL);
        img_request req = tiny();
        req.te_on_cpu = c->te;
        req.vae_on_cpu = c->vae;
        req.vae_tiling = c->tiling;
        req.offload_to_cpu = c->offload;
        req.diffusion_fa = c->fa;
        req.verbose = 1;
        uint64_t id = submit(&h, &req, IMG_PLAN_FIXED, &tiny_model);
        const img_job *j = wait_done(&h, id);
        if (j->state != IMG_JOB_SUCCEEDED)
            fail_msg("case %zu: %s", i, j->error);
        const img_run_info *in = img_runner_info(h.r, id);
        if (strstr(in->cmdline, c->argv_has) == NULL)
            fail_msg("case %zu: '%s' not in %s", i, c->argv_has, in->cmdline);
        char *log = read_log(&h);
        assert_non_null(log);
        if (strstr(log, c->log_has) == NULL)
            fail_msg("case %zu: '%s' not in the log", i, c->log_has);
        mem_free(log);
        /* The GPU was used and given back. */
        fakegpu_state st;
        genai_error e;
        assert_int_equal(fakegpu_read(h.gpu, &st, &e), 0);
        assert_int_equal(st.devices[0].used_bytes, 0);
        fakegpu_state_free(&st);
        h_stop(&h);
    }
}

/* The SDXL-sized fake model (tests/data/image/sdxl.fake.safetensors) as the
 * planner sees it: its module sizes, and compute coefficients converted to
 * the planner's units (per latent pixel = 64 output pixels). */
static const plan_sd_model sdxl_model = {
    .diffusion_bytes = (uint64_t)(4897.05 * MIB),
    .text_encoder_bytes = (uint64_t)(1570.00 * MIB),
    .vae_bytes = (uint64_t)(94.57 * MIB),
    .attn_heads = 10,
    .unet_linear = 140 * 64,
    .unet_fa_linear = 160 * 64 + 1024,
    .vae_per_pixel = 3328,
    .te_compute = (uint64_t)(9.5 * MIB),
};

static img_request sdxl_request(void)
{
    img_request r = tiny();
    snprintf(model_path, sizeof(model_path), "%s/image/sdxl.fake.safetensors", data_dir);
    r.width = r.height = 1024;
    return r;
}

/*
 * The scene this project exists for: an SDXL job on an 8 GB GPU with 2 GiB
 * already taken. The text encoder forced on the GPU leaves no room for the
 * UNet: out of memory, and the error says so with sd-cli's own lines. The
 * planner's placement (FA, tiling, text encoder on the CPU) makes an image.
 */
static void test_original_failure_and_fix(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    make_gpu(&h, 8 * GIB, 2 * GIB);
    h_new_runner(&h, NULL);

    img_request req = sdxl_request();
    req.diffusion_fa = 1;
    req.vae_tiling = 1; /* te_on_cpu = 0: the text encoder on the GPU */
    uint64_t id = submit(&h, &req, IMG_PLAN_FIXED, &sdxl_model);
    const img_job *j = wait_done(&h, id);
    const img_run_info *in = img_runner_info(h.r, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(j->error_code, GENAI_ECHILD_EXITED);
    assert_int_equal(j->n_results, 0);
    assert_int_equal(in->cause, IMG_CAUSE_OUT_OF_MEMORY);
    assert_false(in->fits); /* the planner knew */
    assert_true(in->ended && in->exited);
    assert_int_equal(in->exit_code, 1);
    assert_non_null(strstr(in->tail, "cudaMalloc failed: out of memory"));
    assert_non_null(strstr(in->message, "exited with code 1"));
    assert_non_null(strstr(in->message, "out_of_memory"));
    assert_non_null(strstr(in->message, "cudaMalloc failed"));
    assert_non_null(strstr(j->error, "out of memory"));

    req = sdxl_request(); /* no placement flags: the planner picks */
    id = submit(&h, &req, IMG_PLAN_AUTO, &sdxl_model);
    j = wait_done(&h, id);
    in = img_runner_info(h.r, id);
    if (j->state != IMG_JOB_SUCCEEDED)
        fail_msg("planned job failed: %s", j->error);
    assert_true(in->fits);
    assert_true(in->placement.te_on_cpu);
    assert_int_equal(in->placement.gpu, 0);
    assert_non_null(strstr(in->cmdline, "--backend te=cpu"));
    assert_non_null(strstr(in->cmdline, "--diffusion-fa"));
    assert_non_null(strstr(in->cmdline, "--vae-tiling"));
    assert_null(strstr(in->cmdline, "--offload-to-cpu"));
    assert_int_equal(j->results[0].width, 1024);
    char *log = read_log(&h);
    assert_non_null(strstr(log, "text_encoders 1570.00MB(RAM), diffusion_model 4897.05MB(VRAM)"));
    mem_free(log);
    h_stop(&h);
}

/* Nothing fits a 4 GB GPU: refused before sd-cli runs, with the deficit. */
static void test_no_fit_refused(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    make_gpu(&h, 4 * GIB, 0);
    h_new_runner(&h, NULL);
    img_request req = sdxl_request();
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &sdxl_model);
    const img_job *j = wait_done(&h, id);
    const img_run_info *in = img_runner_info(h.r, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(j->error_code, GENAI_ENO_FIT);
    assert_non_null(strstr(j->error, "short by"));
    assert_true(in->planned);
    assert_false(in->fits);
    assert_true(in->deficit > 0);
    assert_true(in->placement.offload_to_cpu); /* the whole ladder was tried */
    assert_null(in->cmdline);                  /* sd-cli never ran */
    assert_false(in->ended);
    h_stop(&h);
}

static void test_crash_by_signal(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    setenv("FAKE_SD_CRASH_AT_STEP", "2", 1);
    img_request req = tiny();
    req.steps = 4;
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    const img_job *j = wait_done(&h, id);
    unsetenv("FAKE_SD_CRASH_AT_STEP");
    const img_run_info *in = img_runner_info(h.r, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(j->n_results, 0);
    assert_false(in->exited);
    assert_int_equal(in->term_signal, SIGSEGV);
    assert_int_equal(in->cause, IMG_CAUSE_CRASH);
    assert_non_null(strstr(in->message, "killed by signal 11"));
    /* Progress saw step 1 of 4 and nothing after. */
    assert_int_equal(j->progress.step, 1);
    assert_int_equal(j->progress.steps, 4);
    h_stop(&h);
}

static void test_crash_by_exit_code(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    setenv("FAKE_SD_CRASH_AT_STEP", "1", 1);
    setenv("FAKE_SD_CRASH_EXIT", "3", 1);
    img_request req = tiny();
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    const img_job *j = wait_done(&h, id);
    unsetenv("FAKE_SD_CRASH_AT_STEP");
    unsetenv("FAKE_SD_CRASH_EXIT");
    const img_run_info *in = img_runner_info(h.r, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_true(in->exited);
    assert_int_equal(in->exit_code, 3);
    assert_int_equal(in->cause, IMG_CAUSE_UNKNOWN);
    assert_non_null(strstr(in->message, "exited with code 3"));
    h_stop(&h);
}

/* A binary older than the one that answered --version refuses --scheduler:
 * a bad argument, classified from its stderr. */
static void test_bad_argument(void **state)
{
    (void)state;
    extern char **environ;
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    const char **envp = mem_calloc(n + 2, sizeof(*envp));
    assert_non_null(envp);
    for (size_t i = 0; i < n; i++)
        envp[i] = environ[i];
    envp[n] = "FAKE_SD_VERSION=master-262-abcdef0";
    img_runner_opts o;
    memset(&o, 0, sizeof(o));
    o.envp = envp;
    struct h h;
    h_start(&h, &o);
    mem_free(envp);
    img_request req = tiny();
    req.scheduler = "karras";
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    const img_job *j = wait_done(&h, id);
    const img_run_info *in = img_runner_info(h.r, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(in->cause, IMG_CAUSE_BAD_ARGUMENT);
    assert_non_null(strstr(in->tail, "error: unknown argument: --scheduler"));
    assert_non_null(strstr(in->message, "master-827"));
    h_stop(&h);
}

static void write_model(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_model_causes(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    char unknown[PATH_MAX], missing_tensor[PATH_MAX];
    snprintf(unknown, sizeof(unknown), "%s/unknown.safetensors", h.root);
    snprintf(missing_tensor, sizeof(missing_tensor), "%s/broken.safetensors", h.root);
    write_model(unknown, "not a model\n");
    write_model(missing_tensor,
                "fake-sd-model 1\nmissing_tensor=model.diffusion_model.out.2.weight\n");
    struct {
        const char *path;
        enum img_cause cause;
    } cases[] = {{unknown, IMG_CAUSE_MODEL_UNKNOWN}, {missing_tensor, IMG_CAUSE_MISSING_TENSOR}};
    for (size_t i = 0; i < 2; i++) {
        img_request req = tiny();
        req.model = (char *)cases[i].path;
        uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
        const img_job *j = wait_done(&h, id);
        const img_run_info *in = img_runner_info(h.r, id);
        assert_int_equal(j->state, IMG_JOB_FAILED);
        if (in->cause != cases[i].cause)
            fail_msg("case %zu: cause %s: %s", i, img_cause_name(in->cause), in->message);
    }
    /* A model file that does not exist is found out while sizing it. */
    img_request req = tiny();
    req.model = "/nonexistent/model.safetensors";
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, NULL);
    const img_job *j = wait_done(&h, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(j->error_code, -ENOENT);
    assert_non_null(strstr(j->error, "/nonexistent/model.safetensors"));
    h_stop(&h);
}

static void test_missing_binary(void **state)
{
    (void)state;
    img_runner_opts o;
    memset(&o, 0, sizeof(o));
    o.sd_cli = "/nonexistent/sd-cli";
    struct h h;
    h_start(&h, &o);
    img_request req = tiny();
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    const img_job *j = wait_done(&h, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(j->error_code, -ENOENT);
    assert_non_null(strstr(j->error, "/nonexistent/sd-cli"));
    h_stop(&h);
}

static int stage_reached(struct h *h, uint64_t id, enum img_stage st)
{
    const img_job *j = img_runner_job(h->r, id);
    return j != NULL && j->state == IMG_JOB_RUNNING && j->progress.stage == st;
}

static void wait_stage(struct h *h, uint64_t id, enum img_stage st)
{
    int64_t deadline = tu_now_ms() + JOB_MS;
    while (!stage_reached(h, id, st)) {
        if (tu_now_ms() > deadline)
            fail_msg("stage %s not reached", img_stage_name(st));
        if (job_finished(img_runner_job(h->r, id)))
            fail_msg("job ended before stage %s: %s", img_stage_name(st),
                     img_runner_job(h->r, id)->error);
        uv_run(&h->loop, UV_RUN_ONCE);
    }
}

/* A hung sd-cli: cancel stops it (SIGTERM kills it, or with SIGTERM ignored
 * the escalation ends in SIGKILL), the job is cancelled, nothing is left. */
static void test_hang_cancel(void **state)
{
    (void)state;
    for (int ignore_term = 0; ignore_term <= 1; ignore_term++) {
        img_runner_opts o;
        memset(&o, 0, sizeof(o));
        o.stop_grace_ms = 100;
        o.stop_term2_ms = 100;
        struct h h;
        h_start(&h, &o);
        setenv("FAKE_SD_HANG_AT_STEP", "2", 1);
        if (ignore_term)
            setenv("FAKE_SD_IGNORE_TERM", "1", 1);
        img_request req = tiny();
        req.steps = 4;
        uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
        wait_stage(&h, id, IMG_STAGE_SAMPLING);
        int64_t deadline = tu_now_ms() + JOB_MS;
        while (img_runner_job(h.r, id)->progress.step < 1 && tu_now_ms() < deadline)
            uv_run(&h.loop, UV_RUN_ONCE);
        unsetenv("FAKE_SD_HANG_AT_STEP");
        unsetenv("FAKE_SD_IGNORE_TERM");
        pid_t pid = img_runner_info(h.r, id)->pid;
        assert_true(pid > 0);
        assert_int_equal(tu_dir_entries(h.work), 1); /* its private output directory */
        assert_int_equal(img_runner_cancel(h.r, id), IMG_CANCEL_PENDING);
        const img_job *j = wait_done(&h, id);
        const img_run_info *in = img_runner_info(h.r, id);
        assert_int_equal(j->state, IMG_JOB_CANCELLED);
        assert_int_equal(j->error_code, GENAI_ECANCELLED);
        assert_int_equal(j->n_results, 0);
        assert_false(in->exited);
        assert_int_equal(in->term_signal, ignore_term ? SIGKILL : SIGTERM);
        check_pid_gone(pid);
        /* Cancelling a finished job changes nothing. */
        assert_int_equal(img_runner_cancel(h.r, id), IMG_CANCEL_FINISHED);
        assert_int_equal(img_runner_cancel(h.r, 9999), GENAI_ENOT_FOUND);
        h_stop(&h);
    }
}

/* Slow steps: progress arrives step by step, with real counts, never
 * backwards, and reaches 100 only at the end. */
static void test_progress_monotonic(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    setenv("FAKE_SD_STEP_MS", "20", 1);
    img_request req = tiny();
    req.steps = 8;
    req.batch_count = 2;
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    const img_job *j = wait_done(&h, id);
    unsetenv("FAKE_SD_STEP_MS");
    assert_int_equal(j->state, IMG_JOB_SUCCEEDED);
    int last = -1;
    uint32_t seen[3][9];
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; i < h.n_progress; i++) {
        const img_progress *p = &h.progress[i];
        assert_true(p->percent >= last);
        last = p->percent;
        if (p->percent == 100)
            assert_true(p->stage >= IMG_STAGE_SAVING);
        if (p->stage == IMG_STAGE_SAMPLING && p->image >= 1 && p->image <= 2 && p->step <= 8) {
            assert_int_equal(p->steps, 8);
            assert_int_equal(p->images, 2);
            seen[p->image][p->step] = 1;
        }
    }
    assert_int_equal(last, 100);
    for (uint32_t img = 1; img <= 2; img++)
        for (uint32_t k = 1; k <= 8; k++)
            if (!seen[img][k])
                fail_msg("no progress report for image %u step %u", img, k);
    h_stop(&h);
}

/* The queue is bounded; queued jobs run in order and can be cancelled at
 * once; finished jobs are dropped after keep_ms. */
static void test_queue_bound_and_expiry(void **state)
{
    (void)state;
    img_runner_opts o;
    memset(&o, 0, sizeof(o));
    o.max_pending = 3;
    o.keep_ms = 150;
    struct h h;
    h_start(&h, &o);
    img_request req = tiny();
    uint64_t a = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    uint64_t b = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    uint64_t c = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    uint64_t d = 0;
    genai_error e;
    assert_int_equal(img_runner_submit(h.r, &req, NULL, &d, &e), GENAI_EBUSY);
    assert_int_equal(img_runner_pending(h.r), 3);
    assert_int_equal(img_runner_cancel(h.r, b), IMG_CANCEL_DONE);
    assert_int_equal(img_runner_job(h.r, b)->state, IMG_JOB_CANCELLED);
    assert_int_equal(img_runner_submit(h.r, &req, NULL, &d, &e), 0);
    wait_done(&h, a);
    wait_done(&h, c);
    wait_done(&h, d);
    /* FIFO: a, c, d started in that order (b never ran). */
    uint64_t started[8];
    size_t ns = 0;
    for (size_t i = 0; i < h.n_states && ns < 8; i++)
        if (h.states[i] == IMG_JOB_RUNNING)
            started[ns++] = h.state_job[i];
    assert_int_equal(ns, 3);
    assert_int_equal(started[0], a);
    assert_int_equal(started[1], c);
    assert_int_equal(started[2], d);
    /* Expiry, waited on with a deadline. */
    int64_t deadline = tu_now_ms() + 10000;
    while (img_runner_job(h.r, d) != NULL && tu_now_ms() < deadline)
        uv_run(&h.loop, UV_RUN_ONCE);
    assert_null(img_runner_job(h.r, a));
    assert_null(img_runner_job(h.r, d));
    assert_null(img_runner_info(h.r, d));
    h_stop(&h);
}

/* Freeing the runner with a job running kills and reaps sd-cli and removes
 * its directory (h_stop checks both). */
static void test_free_while_running(void **state)
{
    (void)state;
    struct h h;
    h_start(&h, NULL);
    setenv("FAKE_SD_HANG_AT_STEP", "1", 1);
    setenv("FAKE_SD_IGNORE_TERM", "1", 1);
    img_request req = tiny();
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, &tiny_model);
    wait_stage(&h, id, IMG_STAGE_SAMPLING);
    unsetenv("FAKE_SD_HANG_AT_STEP");
    unsetenv("FAKE_SD_IGNORE_TERM");
    pid_t pid = img_runner_info(h.r, id)->pid;
    h_stop(&h);
    check_pid_gone(pid);
}

/* Model sizes for the planner: from the tensor table when the file is a
 * model the diffusion reader knows, else from the file size. */
static void test_size_from_files(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("dm");
    char *sdxl = dmt_write_st(dir, "sdxl.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    struct stat st;
    assert_int_equal(stat(sdxl, &st), 0);
    img_request req = tiny();
    req.model = sdxl;
    plan_sd_model m;
    genai_error e;
    assert_int_equal(img_runner_size_from_files(NULL, &req, &m, &e), 0);
    assert_true(m.diffusion_bytes > 0 && m.text_encoder_bytes > 0);
    assert_true(m.diffusion_bytes + m.text_encoder_bytes + m.vae_bytes <= (uint64_t)st.st_size);
    assert_true(m.attn_heads > 0); /* from the structure, not the default (0) */
    mem_free(sdxl);
    tu_rmdir(dir);
    mem_free(dir);

    req = tiny(); /* the fake model is a text file: shares of its size */
    assert_int_equal(stat(req.model, &st), 0);
    assert_int_equal(img_runner_size_from_files(NULL, &req, &m, &e), 0);
    assert_int_equal(m.text_encoder_bytes, (uint64_t)st.st_size / 5);
    assert_int_equal(m.vae_bytes, (uint64_t)st.st_size / 20);
    assert_int_equal(m.attn_heads, 0);
    req.model = "/nonexistent.safetensors";
    assert_int_equal(img_runner_size_from_files(NULL, &req, &m, &e), -ENOENT);
}

/* A real sd-cli, when one and an SD 1.x model are provided. */
static void test_real_sd_cli(void **state)
{
    (void)state;
    const char *bin = getenv("GENAI_SD_CLI");
    const char *model = getenv("GENAI_SD_MODEL");
    if (bin == NULL || bin[0] == '\0' || model == NULL || model[0] == '\0' ||
        strstr(bin, "fake-sd-cli") != NULL) {
        printf("[  SKIP    ] real sd-cli: set GENAI_SD_CLI to a real sd-cli and GENAI_SD_MODEL "
               "to an SD 1.x checkpoint\n");
        skip();
    }
    img_runner_opts o;
    memset(&o, 0, sizeof(o));
    o.sd_cli = bin;
    struct h h;
    h_start(&h, &o);
    img_request req = tiny();
    req.model = (char *)model;
    req.threads = 2;
    /* The smallest size SD 1.x takes (docs/diffusion-models.md): 64x64 would
     * be adjusted to it anyway, with a warning. */
    req.width = req.height = 256;
    req.steps = 1;
    uint64_t id = submit(&h, &req, IMG_PLAN_AUTO, NULL);
    const img_job *j = wait_done(&h, id);
    if (j->state != IMG_JOB_SUCCEEDED)
        fail_msg("real sd-cli: %s", j->error);
    assert_int_equal(j->results[0].width, 256);
    assert_int_equal(j->results[0].height, 256);
    assert_int_equal(j->results[0].seed, 42);
    assert_int_equal(j->progress.percent, 100);
    /* A model that is not one: classified from the real binary's lines. */
    char bogus[PATH_MAX];
    snprintf(bogus, sizeof(bogus), "%s/bogus.safetensors", h.root);
    write_model(bogus, "not a model\n");
    req.model = bogus;
    id = submit(&h, &req, IMG_PLAN_FIXED, &tiny_model);
    j = wait_done(&h, id);
    assert_int_equal(j->state, IMG_JOB_FAILED);
    assert_int_equal(img_runner_info(h.r, id)->cause, IMG_CAUSE_MODEL_UNKNOWN);
    h_stop(&h);
}

static int setup(void **state)
{
    (void)state;
    const char *build = getenv("GENAI_BUILD_DIR");
    const char *data = getenv("GENAI_TEST_DATA");
    if (build == NULL || data == NULL) {
        fprintf(stderr, "GENAI_BUILD_DIR and GENAI_TEST_DATA must be set (run through ctest)\n");
        return -1;
    }
    snprintf(fake_bin, sizeof(fake_bin), "%s/tests/doubles/sd/fake-sd-cli", build);
    snprintf(data_dir, sizeof(data_dir), "%s", data);
    /* libuv's process-wide signal pipe, created once, is not a leak. */
    uv_loop_t l;
    uv_loop_init(&l);
    uv_signal_t s;
    uv_signal_init(&l, &s);
    uv_close((uv_handle_t *)&s, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_eager_erase),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_batch_and_random_seed),
        cmocka_unit_test(test_placement_flags_reach_argv),
        cmocka_unit_test(test_original_failure_and_fix),
        cmocka_unit_test(test_no_fit_refused),
        cmocka_unit_test(test_crash_by_signal),
        cmocka_unit_test(test_crash_by_exit_code),
        cmocka_unit_test(test_bad_argument),
        cmocka_unit_test(test_model_causes),
        cmocka_unit_test(test_missing_binary),
        cmocka_unit_test(test_hang_cancel),
        cmocka_unit_test(test_progress_monotonic),
        cmocka_unit_test(test_queue_bound_and_expiry),
        cmocka_unit_test(test_free_while_running),
        cmocka_unit_test(test_size_from_files),
        cmocka_unit_test(test_real_sd_cli),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
