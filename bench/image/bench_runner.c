/*
 * bench_runner.c - genai's overhead on one image job.
 *
 * Two ways to make the same image, alternated in one run:
 *   direct  posix_spawn of sd-cli with the argv genai would build (output to
 *           /dev/null), waitpid; nothing else;
 *   runner  img_runner_submit + the loop until the job has finished: probe
 *           snapshot, plan, private directory, supervisor with line
 *           splitting and progress parsing, reap, PNG read and validation,
 *           directory removal.
 * The difference is what genai adds to every job. By default the fake sd-cli
 * runs with FAKE_SD_STEP_MS=0 (a 64x64, 2-step job that does no work), so
 * the overhead is not hidden behind generation time. With GENAI_SD_CLI and
 * GENAI_SD_MODEL set, the real binary and model are measured instead.
 *
 * Usage: bench_image_runner [ITERATIONS]   (default 30)
 * Prints medians in ms, the overhead and the ratio runner / direct.
 */
#include "bench_util.h"

#include "core/alloc.h"
#include "image/request.h"
#include "image/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int run_direct(char **argv, double *ms)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int64_t t0 = bench_now_ns();
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -rc;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *ms = (double)(bench_now_ns() - t0) / 1e6;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int run_runner(uv_loop_t *loop, img_runner *r, const img_request *req, double *ms)
{
    int64_t t0 = bench_now_ns();
    uint64_t id;
    genai_error e;
    if (img_runner_submit(r, req, NULL, &id, &e) < 0) {
        fprintf(stderr, "submit: %s\n", e.detail);
        return -1;
    }
    const img_job *j = img_runner_job(r, id);
    while (j != NULL && (j->state == IMG_JOB_QUEUED || j->state == IMG_JOB_RUNNING)) {
        uv_run(loop, UV_RUN_ONCE);
        j = img_runner_job(r, id);
    }
    *ms = (double)(bench_now_ns() - t0) / 1e6;
    if (j == NULL || j->state != IMG_JOB_SUCCEEDED) {
        fprintf(stderr, "job failed: %s\n", j ? j->error : "gone");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? bench_arg_int("bench_image_runner", argv[1], 1, 10000) : 30;
    const char *bin = getenv("GENAI_SD_CLI");
    const char *model = getenv("GENAI_SD_MODEL");
    int real = bin != NULL && bin[0] != '\0' && model != NULL && model[0] != '\0';
    char fake_model[PATH_MAX];
    snprintf(fake_model, sizeof(fake_model), "%s/image/tiny-sd1.fake.safetensors", TEST_DATA_DIR);
    if (!real) {
        bin = FAKE_SD_CLI_PATH;
        model = fake_model;
        setenv("FAKE_SD_STEP_MS", "0", 1);
    }

    char dir[] = "/tmp/genai-bench-image-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    img_request req;
    memset(&req, 0, sizeof(req));
    req.model = (char *)model;
    req.prompt = "a lovely cat";
    req.width = req.height = 64;
    req.steps = 2;
    req.has_seed = 1;
    req.seed = 42;
    /* The same job both ways: unmarked, the runner applies the model's
     * settings first (SD 1.x: at least 256x256), which the direct argv does
     * not; a real SD 1.x model made that a 3.65x "overhead". */
    req.settings_applied = 1;
    img_argv a;
    genai_error e;
    if (img_argv_build(&req, NULL, bin, dir, &a, &e) < 0) {
        fprintf(stderr, "argv: %s\n", e.detail);
        return 1;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    img_runner *r;
    img_runner_opts o = {.sd_cli = bin};
    if (img_runner_new(&loop, &o, &r, &e) < 0) {
        fprintf(stderr, "runner: %s\n", e.detail);
        return 1;
    }
    /* Warm-up: the first job also finds sd-cli and reads its --version once
     * (cached); the page cache and the probe settle. Not measured. */
    double w;
    if (run_runner(&loop, r, &req, &w) < 0 || run_direct(a.argv, &w) < 0)
        return 1;

    double *direct = mem_calloc((size_t)iters, sizeof(double));
    double *runner = mem_calloc((size_t)iters, sizeof(double));
    if (direct == NULL || runner == NULL)
        return 1;
    for (int i = 0; i < iters; i++) {
        if (run_direct(a.argv, &direct[i]) < 0 || run_runner(&loop, r, &req, &runner[i]) < 0)
            return 1;
    }
    double md = bench_median(direct, iters), mr = bench_median(runner, iters);
    printf("binary: %s%s\n", bin, real ? "" : " (FAKE_SD_STEP_MS=0)");
    printf("job: 64x64, 2 steps, iterations: %d\n", iters);
    printf("direct (spawn + wait):                median %.3f ms\n", md);
    printf("runner (plan, supervise, parse, PNG): median %.3f ms\n", mr);
    printf("overhead: %.3f ms per job, ratio runner/direct %.2f\n", mr - md, mr / md);

    mem_free(direct);
    mem_free(runner);
    img_argv_free(&a);
    img_runner_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    genai_error re;
    img_workdir_remove(dir, &re);
    return 0;
}
