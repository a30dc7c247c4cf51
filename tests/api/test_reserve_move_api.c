/*
 * test_reserve_move_api.c - genai_reserve when the memory is not free: a
 * library context (include/genai.h) with the 8 GiB fake GPU, the 12B-like
 * LLM resident on it (fake-llama-server, about 7 GiB at the planner's
 * -ngl) and a double that keeps its GPU memory 400 ms after it exits (a
 * driver that returns memory late):
 *   - a 4 GiB reservation moves the LLM aside and genai_reserve returns
 *     only once the fake driver no longer lists the LLM's pid and 4 GiB are
 *     free; the LLM is away while it is held and back (a new process, the
 *     same memory) after genai_reservation_release;
 *   - a reservation whose timeout passes before the memory is free returns
 *     GENAI_ETIMEOUT and is released (its events: requested, then released,
 *     never confirmed), and the LLM comes back with its memory, which it
 *     could not if the 4 GiB were still promised.
 * The orchestrator's and the book's events arrive through the event
 * callback; every child is gone after genai_free and the fd count is back.
 */
#include "cmocka_all.h"

#include "../orch/orch_harness.h"
#include "genai.h"
#include "sys/fakegpu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GIB (1ull << 30)
#define HOLD_MS 400
#define MAX_EV 512

static oh g_h; /* fixtures: the directory, the fake GPU file, the model */
static genai *g_g;
static int g_fds;
static pid_t g_pids[32];
static size_t g_n_pids;

/* Events from the callback (the context's loop thread). */
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static char ev_type[MAX_EV][48];
static long long ev_id[MAX_EV]; /* data.id for reservation events, data.pid for orch ones */
static char ev_state[MAX_EV][16];
static size_t n_ev;

static void on_event(const char *type, const char *json, void *ud)
{
    (void)ud;
    json_t *j = json_loads(json, 0, NULL);
    json_t *d = json_object_get(j, "data");
    pthread_mutex_lock(&ev_mu);
    if (n_ev < MAX_EV) {
        snprintf(ev_type[n_ev], sizeof(ev_type[0]), "%s", type);
        json_t *idv = json_object_get(d, strncmp(type, "reservation.", 12) == 0 ? "id" : "pid");
        ev_id[n_ev] = (long long)json_integer_value(idv);
        const char *st = json_string_value(json_object_get(d, "state"));
        snprintf(ev_state[n_ev], sizeof(ev_state[0]), "%s", st != NULL ? st : "");
        n_ev++;
    }
    pthread_mutex_unlock(&ev_mu);
    json_decref(j);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Index of the first event of type (and id, when id >= 0) at or after
 * from, waiting up to timeout_ms for it; -1 then. */
static int ev_find(const char *type, long long id, size_t from, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int found = -1;
        pthread_mutex_lock(&ev_mu);
        for (size_t i = from; i < n_ev && found < 0; i++)
            if (strcmp(ev_type[i], type) == 0 && (id < 0 || ev_id[i] == id))
                found = (int)i;
        pthread_mutex_unlock(&ev_mu);
        if (found >= 0 || now_ms() >= end)
            return found;
        nap(5);
    }
}

static size_t ev_count(void)
{
    pthread_mutex_lock(&ev_mu);
    size_t n = n_ev;
    pthread_mutex_unlock(&ev_mu);
    return n;
}

static void note_pid(pid_t pid)
{
    for (size_t i = 0; i < g_n_pids; i++)
        if (g_pids[i] == pid)
            return;
    if (pid > 0 && g_n_pids < sizeof(g_pids) / sizeof(g_pids[0]))
        g_pids[g_n_pids++] = pid;
}

/* The LLM's state into st and its pid. */
static pid_t llm_status(char *st, size_t n)
{
    char *s = NULL;
    genai_error e;
    int rc = genai_llm_status(g_g, &s, &e);
    if (rc < 0)
        fail_msg("genai_llm_status: %s", e.detail);
    json_t *j = json_loads(s, 0, NULL);
    genai_free_string(s);
    assert_non_null(j);
    const char *v = json_string_value(json_object_get(j, "state"));
    snprintf(st, n, "%s", v != NULL ? v : "");
    pid_t pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    json_decref(j);
    note_pid(pid);
    return pid;
}

static pid_t wait_llm_ready(int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    char st[32] = "";
    while (now_ms() < end) {
        pid_t pid = llm_status(st, sizeof(st));
        if (strcmp(st, "ready") == 0)
            return pid;
        nap(20);
    }
    fail_msg("the LLM is not ready after %d ms (state %s)", timeout_ms, st);
    return 0;
}

/* Free bytes of the fake GPU now, and whether pid holds an allocation. */
static uint64_t gpu_free(pid_t pid, int *listed)
{
    fakegpu_state st;
    assert_int_equal(fakegpu_read(g_h.gpu, &st, NULL), 0);
    uint64_t free_b = st.devices[0].total_bytes - st.devices[0].used_bytes;
    *listed = 0;
    for (uint32_t i = 0; i < st.n_allocs; i++)
        *listed |= st.allocs[i].pid == pid;
    fakegpu_state_free(&st);
    return free_b;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---- set-up ---------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void run_genai(const char *home, const char *const *args)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = {GENAI_BIN};
        int n = 1;
        for (int i = 0; args[i] != NULL && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        setenv("GENAI_HOME", home, 1);
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

static int group_setup(void **state)
{
    (void)state;
    oh_setup(&g_h);
    oh_fake_gpu(&g_h, 8 * GIB);
    oh_write_llm(&g_h, 12288);
    char v[16];
    snprintf(v, sizeof(v), "%d", HOLD_MS);
    setenv("FAKE_LLAMA_GPU_HOLD_MS", v, 1);
    g_fds = count_fds();
    char home[400];
    snprintf(home, sizeof(home), "%s/home", g_h.dir);
    assert_int_equal(mkdir(home, 0700), 0);
    setenv("GENAI_HOME", home, 1);
    const char *add[] = {"add", g_h.llm_model, NULL};
    run_genai(home, add);

    genai_error e;
    genai_error_clear(&e);
    if (genai_new(NULL, &g_g, &e) != 0)
        fail_msg("genai_new: %s", e.detail);
    assert_int_equal(genai_set_event_callback(g_g, on_event, NULL, &e), 0);
    if (genai_llm_start(g_g, "llm-12b", NULL, &e) != 0)
        fail_msg("genai_llm_start: %s", e.detail);
    pid_t llm = wait_llm_ready(20000);
    int listed = 0;
    uint64_t free_b = gpu_free(llm, &listed);
    assert_true(listed);
    printf("# the LLM (pid %d) leaves %.2f GiB of the 8 GiB fake GPU free\n", (int)llm,
           (double)free_b / (double)GIB);
    assert_true(free_b < 4 * GIB); /* a 4 GiB reservation must move it */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    genai_error e;
    genai_set_event_callback(g_g, NULL, NULL, &e);
    genai_free(g_g);
    g_g = NULL;
    for (size_t i = 0; i < g_n_pids; i++) {
        errno = 0;
        assert_true(kill(g_pids[i], 0) != 0 && errno == ESRCH);
    }
    nftw(g_h.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    unsetenv("GENAI_FAKE_GPU");
    unsetenv("FAKE_LLAMA_GPU_HOLD_MS");
    assert_int_equal(count_fds(), g_fds);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------- */

static void test_reserve_moves_the_llm(void **state)
{
    (void)state;
    char st[32];
    pid_t llm = wait_llm_ready(20000);
    size_t from = ev_count();
    genai_error e;
    genai_error_clear(&e);
    uint64_t id = 0;
    uint64_t t0 = now_ms();
    int rc = genai_reserve(g_g, 0, 4 * GIB, 60, "the game loads a level", 20000, &id, &e);
    uint64_t took = now_ms() - t0;
    if (rc != 0)
        fail_msg("genai_reserve: %s %s", genai_err_name(rc), e.detail);
    /* Confirmed only once observed free: the LLM's pid is no longer listed
     * (the double keeps it listed HOLD_MS after exit) and 4 GiB are free. */
    int listed = 1;
    uint64_t free_b = gpu_free(llm, &listed);
    printf("# confirmed after %llu ms, %.2f GiB free\n", (unsigned long long)took,
           (double)free_b / (double)GIB);
    assert_false(listed);
    assert_true(free_b >= 4 * GIB);
    assert_true(took >= HOLD_MS);
    assert_true(id > 0);
    llm_status(st, sizeof(st));
    assert_string_not_equal(st, "ready");

    /* The events: requested, the LLM stopped and its memory reclaimed, then
     * confirmed. */
    int req = ev_find("reservation.requested", (long long)id, from, 5000);
    int conf = ev_find("reservation.confirmed", (long long)id, from, 5000);
    int stopped = ev_find("orch.llm_stopped", llm, from, 5000);
    int recl = ev_find("orch.reclaimed", -1, (size_t)(stopped < 0 ? 0 : stopped), 5000);
    assert_true(req >= 0 && stopped > req && recl > stopped && conf > recl);

    /* Held: it stays away. */
    uint64_t end = now_ms() + 300;
    while (now_ms() < end) {
        assert_true(gpu_free(llm, &listed) >= 4 * GIB);
        llm_status(st, sizeof(st));
        assert_string_not_equal(st, "ready");
        nap(50);
    }

    /* Released: the LLM returns with its memory. */
    size_t rel_from = ev_count();
    assert_int_equal(genai_reservation_release(g_g, id, &e), 0);
    assert_int_equal(genai_reservation_release(g_g, id, &e), GENAI_ENOT_FOUND);
    pid_t back = wait_llm_ready(30000);
    assert_int_not_equal(back, llm);
    free_b = gpu_free(back, &listed);
    assert_true(listed);
    assert_true(free_b < 4 * GIB);
    int rel = ev_find("reservation.released", (long long)id, rel_from, 5000);
    int ready = ev_find("orch.llm_ready", back, rel_from, 5000);
    assert_true(rel >= 0 && ready > rel);
}

static void test_reserve_times_out(void **state)
{
    (void)state;
    pid_t llm = wait_llm_ready(30000);
    size_t from = ev_count();
    genai_error e;
    genai_error_clear(&e);
    uint64_t id = 0;
    /* 100 ms: the LLM's memory comes back HOLD_MS after it exits, later. */
    uint64_t t0 = now_ms();
    int rc = genai_reserve(g_g, 0, 4 * GIB, 60, "an impatient app", 100, &id, &e);
    uint64_t took = now_ms() - t0;
    printf("# genai_reserve answered %s after %llu ms: %s\n", genai_err_name(rc),
           (unsigned long long)took, e.detail);
    assert_int_equal(rc, GENAI_ETIMEOUT);
    assert_int_equal(id, 0);
    assert_true(took >= 100 && took < 5000);

    /* The reservation was released, never confirmed. */
    int req = ev_find("reservation.requested", -1, from, 5000);
    assert_true(req >= 0);
    long long rid;
    pthread_mutex_lock(&ev_mu);
    rid = ev_id[req];
    pthread_mutex_unlock(&ev_mu);
    int rel = ev_find("reservation.released", rid, (size_t)req, 5000);
    assert_true(rel > req);
    pthread_mutex_lock(&ev_mu);
    assert_string_equal(ev_state[rel], "released");
    pthread_mutex_unlock(&ev_mu);
    assert_int_equal(ev_find("reservation.confirmed", rid, from, 0), -1);
    assert_int_equal(genai_reservation_release(g_g, (uint64_t)rid, &e), GENAI_ENOT_FOUND);

    /* The LLM comes back with all its memory: nothing is promised any more
     * (with 4 GiB promised it could not be placed as before). */
    pid_t back = wait_llm_ready(30000);
    int listed = 0;
    uint64_t free_b = gpu_free(back, &listed);
    assert_true(listed);
    assert_true(free_b < 4 * GIB);
    if (back != llm)
        assert_true(ev_find("orch.llm_ready", back, (size_t)rel, 5000) > rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_moves_the_llm),
        cmocka_unit_test(test_reserve_times_out),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
