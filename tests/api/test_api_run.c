/*
 * test_api_run.c - the C library's LLM, chat and image calls
 * (include/genai.h) end to end, in this process, with the fake GPU
 * (docs/fake-gpu.md), fake-llama-server and fake-sd-cli: start, status and
 * stop; chat whole and streamed; a stream stopped by its callback (the
 * upstream is aborted, the grant released); images blocking (JSON and
 * bytes) and asynchronous with progress, polling and cancel; an image that
 * moves the LLM aside and the chat after it; the orchestrator's events on
 * the event callback; four threads calling at once (run it under TSan);
 * and no fd or child process left behind.
 *
 * Models are registered with the genai command itself (`genai add`), as a
 * user would, into a temporary GENAI_HOME.
 */
#include "cmocka_all.h"

#include "genai.h"

#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_home[96];
static char g_gpu[160];
static pid_t g_pids[32];
static size_t g_n_pids;

static const char chat3[] = "{\"model\":\"valid_tiny_llama\",\"max_tokens\":3,"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* ---- setup ------------------------------------------------------------------- */

static void run_genai(const char *const *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {GENAI_BIN};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(GENAI_BIN, (char *const *)argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* An 8 GiB fake GPU, empty. */
static void write_gpu(void)
{
    static const char text[] = "{\"devices\":[{\"name\":\"Fake GPU 8GB\","
                               "\"total_bytes\":8589934592}],\"allocations\":[]}\n";
    assert_int_equal(tu_write(g_gpu, text, strlen(text)), 0);
}

static int group_setup(void **state)
{
    (void)state;
    assert_int_equal(tu_mkdtemp(g_home, sizeof(g_home), "apirun"), 0);
    setenv("GENAI_HOME", g_home, 1);
    snprintf(g_gpu, sizeof(g_gpu), "%s/gpu.json", g_home);
    write_gpu();
    setenv("GENAI_FAKE_GPU", g_gpu, 1);
    setenv("GENAI_LLAMA_SERVER", FAKE_LLAMA_BIN, 1);
    setenv("GENAI_SD_CLI", FAKE_SD_BIN, 1);
    setenv("FAKE_LLAMA_TOKEN_MS", "20", 1); /* a whole context takes 40 s */
    setenv("FAKE_SD_STEP_MS", "20", 1);
    const char *data = getenv("GENAI_TEST_DATA");
    assert_non_null(data);
    char llm[256], sd[256];
    snprintf(llm, sizeof(llm), "%s/gguf/corpus/valid_tiny_llama.gguf", data);
    snprintf(sd, sizeof(sd), "%s/image/tiny-sd1.fake.safetensors", data);
    const char *add_llm[] = {"add", llm, NULL};
    const char *add_sd[] = {"add", sd, "--kind", "diffusion", "--name", "sd1", NULL};
    run_genai(add_llm);
    run_genai(add_sd);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    /* Every llama-server and sd-cli seen is gone (genai_free reaps them). */
    for (size_t i = 0; i < g_n_pids; i++)
        assert_true(kill(g_pids[i], 0) != 0 && errno == ESRCH);
    tu_rm_rf(g_home);
    return 0;
}

static genai *new_ctx(void)
{
    genai *g = NULL;
    genai_error e;
    genai_error_clear(&e);
    int rc = genai_new(NULL, &g, &e);
    if (rc < 0)
        fail_msg("genai_new: %s %s", genai_err_name(rc), e.detail);
    return g;
}

/* The LLM status object; *pid its pid. */
static json_t *status(genai *g, pid_t *pid)
{
    char *s = NULL;
    genai_error e;
    int rc = genai_llm_status(g, &s, &e);
    if (rc < 0)
        fail_msg("status: %s", e.detail);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    genai_free_string(s);
    if (pid != NULL)
        *pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    return j;
}

static void note_pid(pid_t pid)
{
    if (pid > 0 && g_n_pids < sizeof(g_pids) / sizeof(g_pids[0]))
        g_pids[g_n_pids++] = pid;
}

static const char *content_of(json_t *reply)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(reply, "choices"), 0), "message"),
        "content"));
}

/* ---- events ------------------------------------------------------------------- */

typedef struct evlog {
    pthread_mutex_t mu;
    genai *g;
    char types[4096];
    int reentry_rc; /* a waiting call from the callback */
} evlog;

static void on_event(const char *type, const char *json, void *ud)
{
    evlog *l = ud;
    (void)json;
    char *s = NULL;
    int rc = genai_llm_status(l->g, &s, NULL); /* would deadlock: refused */
    genai_free_string(s);
    pthread_mutex_lock(&l->mu);
    l->reentry_rc = rc;
    size_t used = strlen(l->types);
    snprintf(l->types + used, sizeof(l->types) - used, "%s;", type);
    pthread_mutex_unlock(&l->mu);
}

static int ev_has(evlog *l, const char *type)
{
    pthread_mutex_lock(&l->mu);
    int has = strstr(l->types, type) != NULL;
    pthread_mutex_unlock(&l->mu);
    return has;
}

/* ---- the LLM -------------------------------------------------------------------- */

static void test_llm_start_status_stop(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    genai *g = new_ctx();
    evlog l = {.mu = PTHREAD_MUTEX_INITIALIZER, .g = g};
    genai_error e;
    assert_int_equal(genai_set_event_callback(g, on_event, &l, &e), 0);

    pid_t pid;
    json_t *j = status(g, &pid);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "absent");
    assert_int_equal(pid, 0);
    json_decref(j);

    assert_int_equal(genai_llm_start(g, "valid_tiny_llama", "{\"colour\":1}", &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "colour"));
    assert_int_equal(genai_llm_start(g, "valid_tiny_llama", "{\"ctx\":-1}", &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_llm_start(g, "ghost", NULL, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "ghost"));
    assert_int_equal(genai_llm_start(g, "sd1", NULL, &e), GENAI_EBAD_ARG);

    int rc = genai_llm_start(g, "valid_tiny_llama", "{\"ctx_size\":1024}", &e);
    if (rc < 0)
        fail_msg("start: %s", e.detail);
    j = status(g, &pid);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "ready");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "valid_tiny_llama");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "plan"), "ctx")), 1024);
    assert_true(pid > 0);
    note_pid(pid);
    json_decref(j);
    /* Again: already READY, at once. */
    assert_int_equal(genai_llm_start(g, "valid_tiny_llama", NULL, &e), 0);

    assert_int_equal(genai_llm_stop(g, &e), 0);
    assert_true(kill(pid, 0) != 0 && errno == ESRCH); /* stopped means reaped */
    assert_int_equal(genai_llm_stop(g, &e), 0);       /* nothing loaded */

    assert_true(ev_has(&l, "orch.llm_ready;"));
    assert_true(ev_has(&l, "orch.reclaimed;"));
    pthread_mutex_lock(&l.mu);
    assert_int_equal(l.reentry_rc, GENAI_EBUSY);
    pthread_mutex_unlock(&l.mu);
    assert_int_equal(genai_set_event_callback(g, NULL, NULL, &e), 0);
    genai_free(g);
    assert_int_equal(tu_fd_count(), fds);
}

/* ---- chat ------------------------------------------------------------------------ */

typedef struct collect {
    char text[4096];
    int chunks;
    int stop_after; /* 0: never */
    int finish_seen;
} collect;

static int on_chunk(const char *chunk_json, void *ud)
{
    collect *c = ud;
    json_t *j = json_loads(chunk_json, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    const char *d = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    if (d != NULL) {
        size_t used = strlen(c->text);
        snprintf(c->text + used, sizeof(c->text) - used, "%s", d);
    }
    if (json_is_string(json_object_get(choice, "finish_reason")))
        c->finish_seen = 1;
    json_decref(j);
    c->chunks++;
    return c->stop_after != 0 && c->chunks >= c->stop_after;
}

static void test_chat(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    genai *g = new_ctx();
    genai_error e;
    char *s = (char *)"untouched";

    /* Request errors: nothing is loaded for them. */
    assert_int_equal(genai_chat(g, "not json", &s, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_chat(g, "{\"messages\":[]}", &s, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "model"));
    assert_int_equal(genai_chat(g, "{\"model\":\"ghost\",\"messages\":[]}", &s, &e),
                     GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "genai pull")); /* the suggestion */
    assert_int_equal(genai_chat(g, "{\"model\":\"sd1\",\"messages\":[]}", &s, &e), GENAI_EBAD_ARG);
    assert_string_equal(s, "untouched");

    /* Whole: loads the LLM on demand. */
    int rc = genai_chat(g, chat3, &s, &e);
    if (rc < 0)
        fail_msg("chat: %s", e.detail);
    json_t *j = json_loads(s, 0, NULL);
    genai_free_string(s);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_string_equal(content_of(j), "0rr="); /* the double's deterministic tokens */
    json_decref(j);
    pid_t pid;
    json_decref(status(g, &pid));
    note_pid(pid);

    /* Streamed: one chunk per token, in order, on this thread. */
    collect c = {.stop_after = 0};
    const char chat5[] = "{\"model\":\"valid_tiny_llama\",\"max_tokens\":5,\"stream\":false,"
                         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    rc = genai_chat_stream(g, chat5, on_chunk, &c, &e);
    if (rc < 0)
        fail_msg("stream: %s", e.detail);
    assert_string_equal(c.text, "0rr=rr=");
    assert_true(c.chunks >= 5);
    assert_true(c.finish_seen);

    /* llama-server's own refusal comes back as GENAI_EHTTP with its message. */
    rc = genai_chat(g, "{\"model\":\"valid_tiny_llama\",\"messages\":\"nope\"}", &s, &e);
    assert_int_equal(rc, GENAI_EBAD_ARG); /* ours: messages must be an array */
    /* A prompt longer than the context (one token per 4 bytes, n_ctx at
     * most the model's 2048). */
    char big[12000];
    int n = snprintf(big, sizeof(big),
                     "{\"model\":\"valid_tiny_llama\",\"messages\":[{\"role\":\"user\","
                     "\"content\":\"");
    memset(big + n, 'a', 10000);
    snprintf(big + n + 10000, sizeof(big) - (size_t)n - 10000, "\"}]}");
    s = (char *)"untouched";
    assert_int_equal(genai_chat(g, big, &s, &e), GENAI_EHTTP);
    assert_non_null(strstr(e.detail, "400"));
    assert_non_null(strstr(e.detail, "context"));
    assert_string_equal(s, "untouched");
    c = (collect){.stop_after = 0};
    assert_int_equal(genai_chat_stream(g, big, on_chunk, &c, &e), GENAI_EHTTP);
    assert_int_equal(c.chunks, 0);

    genai_free(g);
    assert_true(tu_wait_pid_gone(pid, 10000));
    assert_int_equal(tu_fd_count(), fds);
}

/* A stream stopped by its callback: the call returns GENAI_ECANCELLED at
 * once, the grant is released and llama-server's only slot is free for the
 * next request (it would otherwise generate 2048 tokens, 40 s). */
static void test_chat_stream_cancel(void **state)
{
    (void)state;
    genai *g = new_ctx();
    genai_error e;
    const char endless[] = "{\"model\":\"valid_tiny_llama\","
                           "\"messages\":[{\"role\":\"user\",\"content\":\"go on\"}]}";
    collect c = {.stop_after = 3};
    assert_int_equal(genai_chat_stream(g, endless, on_chunk, &c, &e), GENAI_ECANCELLED);
    assert_int_equal(c.chunks, 3);
    pid_t pid;
    json_t *j = status(g, &pid);
    note_pid(pid);
    assert_int_equal(json_integer_value(json_object_get(j, "in_flight")), 0);
    json_decref(j);
    char *s = NULL;
    int rc = genai_chat(g, chat3, &s, &e);
    if (rc < 0)
        fail_msg("chat after cancel: %s", e.detail);
    j = json_loads(s, 0, NULL);
    assert_string_equal(content_of(j), "0rr=");
    json_decref(j);
    genai_free_string(s);
    genai_free(g);
}

/* ---- images ---------------------------------------------------------------------- */

typedef struct imgwatch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int progress_calls;
    int last_step, last_steps;
    int done_calls;
    int done_status;
    uint64_t done_job;
    char done_json_head[64];
    int cancel_at_step; /* 0: never */
    genai *g;
    uint64_t job;
} imgwatch;

static void on_img_progress(uint64_t job, int step, int steps, void *ud)
{
    imgwatch *w = ud;
    (void)job;
    pthread_mutex_lock(&w->mu);
    w->progress_calls++;
    w->last_step = step;
    w->last_steps = steps;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_img_done(uint64_t job, int status, const char *json, void *ud)
{
    imgwatch *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done_calls++;
    w->done_status = status;
    w->done_job = job;
    snprintf(w->done_json_head, sizeof(w->done_json_head), "%s", json);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits until the watch's counter reaches n (30 s at most). */
static int watch_wait(imgwatch *w, int *counter, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&w->mu);
    while (*counter < n && pthread_cond_timedwait(&w->cv, &w->mu, &dl) == 0)
        ;
    int got = *counter;
    pthread_mutex_unlock(&w->mu);
    return got;
}

static int is_png(const unsigned char *p, size_t n)
{
    return n > 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static void test_images(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    genai *g = new_ctx();
    genai_error e;

    /* Blocking, as bytes, with progress. */
    imgwatch w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    genai_image_result *res = NULL;
    int rc = genai_image(g,
                         "{\"model\":\"sd1\",\"prompt\":\"a red cube\",\"size\":\"64x64\","
                         "\"n\":2,\"steps\":3,\"seed\":42}",
                         on_img_progress, &w, &res, &e);
    if (rc < 0)
        fail_msg("image: %s", e.detail);
    assert_int_equal(res->count, 2);
    assert_true(res->job > 0);
    for (size_t i = 0; i < 2; i++) {
        assert_true(is_png(res->images[i].png, res->images[i].png_len));
        assert_int_equal(res->images[i].width, 64);
        assert_int_equal(res->images[i].height, 64);
    }
    assert_int_equal(res->images[0].seed, 42);
    json_t *warn = json_loads(res->warnings_json, 0, NULL);
    assert_true(json_is_array(warn));
    json_decref(warn);
    genai_image_result_free(res);
    genai_image_result_free(NULL);
    assert_true(w.progress_calls >= 1);
    assert_int_equal(w.last_steps, 3);

    /* Blocking, as the OpenAI response. */
    char *s = NULL;
    rc = genai_image_generate(g, "{\"prompt\":\"a blue sphere\",\"size\":\"64x64\",\"steps\":2}",
                              NULL, NULL, &s, &e);
    if (rc < 0)
        fail_msg("image_generate: %s", e.detail);
    json_t *j = json_loads(s, 0, NULL);
    genai_free_string(s);
    const char *b64 = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "data"), 0), "b64_json"));
    assert_non_null(b64);
    assert_memory_equal(b64, "iVBORw0KGgo", 11); /* "\x89PNG" in base64 */
    json_decref(j);

    /* Request errors. */
    s = (char *)"untouched";
    assert_int_equal(genai_image_generate(g, "{\"size\":\"64x64\"}", NULL, NULL, &s, &e),
                     GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "prompt"));
    assert_int_equal(genai_image_generate(g, "{\"prompt\":\"x\",\"model\":\"valid_tiny_llama\"}",
                                          NULL, NULL, &s, &e),
                     GENAI_EBAD_ARG);
    assert_string_equal(s, "untouched");

    /* Asynchronous: progress, done, poll. */
    imgwatch a = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    uint64_t job = 0;
    rc = genai_image_submit(g, "{\"prompt\":\"a green cone\",\"size\":\"64x64\",\"steps\":4}",
                            on_img_progress, on_img_done, &a, &job, &e);
    if (rc < 0)
        fail_msg("submit: %s", e.detail);
    assert_true(job > 0);
    assert_int_equal(watch_wait(&a, &a.done_calls, 1), 1);
    assert_int_equal(a.done_status, 0);
    assert_int_equal(a.done_job, job);
    assert_non_null(strstr(a.done_json_head, "\"created\""));
    assert_int_equal(a.last_steps, 4);
    rc = genai_image_poll(g, job, &s, &e);
    assert_int_equal(rc, 0);
    j = json_loads(s, 0, NULL);
    genai_free_string(s);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "succeeded");
    assert_non_null(json_object_get(j, "result"));
    json_decref(j);
    assert_int_equal(genai_image_cancel(g, job, &e), GENAI_ENOT_FOUND); /* finished */
    assert_int_equal(genai_image_poll(g, 999999, &s, &e), GENAI_ENOT_FOUND);

    /* Asynchronous, cancelled while it runs. */
    imgwatch c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    rc = genai_image_submit(g, "{\"prompt\":\"slow\",\"size\":\"64x64\",\"steps\":100}",
                            on_img_progress, on_img_done, &c, &job, &e);
    assert_int_equal(rc, 0);
    assert_true(watch_wait(&c, &c.progress_calls, 1) >= 1); /* running */
    assert_int_equal(genai_image_cancel(g, job, &e), 0);
    assert_int_equal(watch_wait(&c, &c.done_calls, 1), 1);
    assert_int_equal(c.done_status, GENAI_ECANCELLED);
    assert_non_null(strstr(c.done_json_head, "\"error\""));

    /* A job still running when the context goes: done reports the cancel. */
    imgwatch f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    rc = genai_image_submit(g, "{\"prompt\":\"never\",\"size\":\"64x64\",\"steps\":100}", NULL,
                            on_img_done, &f, &job, &e);
    assert_int_equal(rc, 0);
    genai_free(g);
    assert_int_equal(f.done_calls, 1);
    assert_int_equal(f.done_status, GENAI_ECANCELLED);
    assert_int_equal(tu_fd_count(), fds);
}

/* An image that does not fit next to the LLM moves it aside; the next chat
 * waits for the reload and works. */
static void test_offload_then_chat(void **state)
{
    (void)state;
    /* The double's weights: 7840 MiB of the 8 GiB fake GPU, measured at
     * READY. What is left beside it less the planner's 256 MiB reserve
     * (about 90 MiB) is too little for the image's smallest placement
     * (about 190 MiB); alone, the image fits, and so does the LLM's reload
     * after it. The measured footprint is learned for later starts of this
     * model, so this test runs last. */
    setenv("FAKE_LLAMA_MODEL_BYTES", "8220835840", 1);
    setenv("FAKE_LLAMA_N_LAYER", "1", 1);   /* as the GGUF says: -ngl 2 is every unit */
    setenv("FAKE_LLAMA_MEM_SCALE", "0", 1); /* no real host memory for it */
    genai *g = new_ctx();
    evlog l = {.mu = PTHREAD_MUTEX_INITIALIZER, .g = g};
    genai_error e;
    assert_int_equal(genai_set_event_callback(g, on_event, &l, &e), 0);
    char *s = NULL;
    int rc = genai_chat(g, chat3, &s, &e);
    if (rc < 0)
        fail_msg("chat: %s", e.detail);
    genai_free_string(s);
    pid_t pid1;
    json_decref(status(g, &pid1));
    note_pid(pid1);
    genai_image_result *res = NULL;
    rc = genai_image(g, "{\"prompt\":\"a lighthouse\",\"size\":\"64x64\",\"steps\":2}", NULL, NULL,
                     &res, &e);
    if (rc < 0)
        fail_msg("image: %s", e.detail);
    assert_true(res->offloaded);
    genai_image_result_free(res);
    assert_true(ev_has(&l, "orch.offload_started;"));
    assert_true(kill(pid1, 0) != 0 && errno == ESRCH); /* moved aside means stopped */

    rc = genai_chat(g, chat3, &s, &e);
    if (rc < 0)
        fail_msg("chat after the image: %s", e.detail);
    json_t *j = json_loads(s, 0, NULL);
    assert_string_equal(content_of(j), "0rr=");
    json_decref(j);
    genai_free_string(s);
    pid_t pid2;
    json_decref(status(g, &pid2));
    note_pid(pid2);
    assert_true(pid2 > 0 && pid2 != pid1);
    assert_true(ev_has(&l, "orch.llm_ready;"));
    assert_int_equal(genai_set_event_callback(g, NULL, NULL, &e), 0);
    genai_free(g);
    unsetenv("FAKE_LLAMA_MODEL_BYTES");
    unsetenv("FAKE_LLAMA_N_LAYER");
    unsetenv("FAKE_LLAMA_MEM_SCALE");
}

/* ---- threads ---------------------------------------------------------------------- */

typedef struct worker {
    genai *g;
    int kind;
    int failures;
    char why[GENAI_ERROR_DETAIL_MAX + 64];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    genai_error e;
    for (int i = 0; i < 3; i++) {
        char *s = NULL;
        int rc = 0;
        switch (w->kind) {
        case 0:
            rc = genai_chat(w->g, chat3, &s, &e);
            break;
        case 1: {
            collect c = {.stop_after = 0};
            rc = genai_chat_stream(w->g, chat3, on_chunk, &c, &e);
            if (rc == 0 && strcmp(c.text, "0rr=") != 0)
                rc = GENAI_EINTERNAL;
            break;
        }
        case 2:
            rc = genai_llm_status(w->g, &s, &e);
            break;
        default:
            rc = genai_image_generate(w->g, "{\"prompt\":\"t\",\"size\":\"64x64\",\"steps\":1}",
                                      NULL, NULL, &s, &e);
            break;
        }
        genai_free_string(s);
        if (rc < 0 && w->failures++ == 0)
            snprintf(w->why, sizeof(w->why), "%s: %s", genai_err_name(rc), e.detail);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    genai *g = new_ctx();
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.g = g, .kind = i};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failures != 0)
            fail_msg("thread %d: %d failures, first %s", i, w[i].failures, w[i].why);
    }
    pid_t pid;
    json_decref(status(g, &pid));
    note_pid(pid);
    genai_free(g);
    assert_int_equal(tu_fd_count(), fds);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* libuv keeps a process-wide pipe pair from its first loop on, and the
     * first context opens what stays open for the process (the probe's
     * libraries): create one before any fd count. */
    char home[96];
    if (tu_mkdtemp(home, sizeof(home), "apirun-warm") == 0) {
        setenv("GENAI_HOME", home, 1);
        genai *warm = NULL;
        if (genai_new(NULL, &warm, NULL) == 0)
            genai_free(warm);
        tu_rm_rf(home);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_start_status_stop),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_chat_stream_cancel),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_offload_then_chat),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
