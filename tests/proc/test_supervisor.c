/*
 * test_supervisor.c - the supervisor against the proc_child double, one
 * failure per test: crash at start, death while loading, hang before ready,
 * SIGTERM ignored, restart backoff and the death tally, the watchdog, fd
 * hygiene, the parent-death signal, line splitting and the log file. Each
 * test also checks that no child and no fd is left behind.
 */
#include "cmocka_all.h"

#include "core/alloc.h"
#include "proc/httpcheck.h"
#include "proc/lines.h"
#include "proc_test_util.h"
#include "sup_harness.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fixture {
    int fds_before;
} fixture;

static int setup(void **state)
{
    static fixture f;
    f.fds_before = tu_fd_count();
    *state = &f;
    return 0;
}

/* Every test ends with no child left to reap and no fd left open. */
static int teardown(void **state)
{
    fixture *f = *state;
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(tu_fd_count(), f->fds_before);
    return 0;
}

static int count_state(const hx *h, sup_state st)
{
    int n = 0;
    for (int i = 0; i < h->nevents; i++)
        n += h->events[i].ev.state == st;
    return n;
}

static sup_check *http_check(hx *h, int port, const char *bearer)
{
    proc_httpcheck_opts o = {.port = port,
                             .path = "/health",
                             .bearer = bearer,
                             .expect_status = 200,
                             .json_key = "status",
                             .json_value = "ok"};
    sup_check *c = NULL;
    assert_int_equal(proc_httpcheck_new(h->http, &o, &c, NULL), 0);
    return c;
}

/* ---- units --------------------------------------------------------------- */

typedef struct collected {
    char text[512];
    size_t len;
    int n;
} collected;

static void collect(void *arg, const char *line, size_t len)
{
    collected *c = arg;
    memcpy(c->text + c->len, line, len);
    c->len += len;
    c->text[c->len++] = '|';
    c->text[c->len] = '\0';
    c->n++;
}

static void test_line_splitting_every_boundary(void **state)
{
    (void)state;
    const char input[] = "a\nb\r\nc\rd\x1b[31mred\x1b[0m\r\n\ne";
    size_t n = sizeof(input) - 1;
    /* Every split point of the input into two reads gives the same lines. */
    for (size_t cut = 0; cut <= n; cut++) {
        proc_lines pl;
        collected c = {.len = 0};
        assert_int_equal(proc_lines_init(&pl, 64), 0);
        proc_lines_feed(&pl, input, cut, collect, &c);
        proc_lines_feed(&pl, input + cut, n - cut, collect, &c);
        proc_lines_flush(&pl, collect, &c);
        assert_string_equal(c.text, "a|b|c|d\x1b[31mred\x1b[0m||e|");
        proc_lines_free(&pl);
    }
}

static void test_long_lines_are_cut(void **state)
{
    (void)state;
    proc_lines pl;
    collected c = {.len = 0};
    assert_int_equal(proc_lines_init(&pl, 4), 0);
    proc_lines_feed(&pl, "abcdefghij\n", 11, collect, &c);
    assert_string_equal(c.text, "abcd|efgh|ij|");
    proc_lines_free(&pl);
    proc_lines_free(NULL);
}

static void test_ring_and_ansi(void **state)
{
    (void)state;
    proc_ring r;
    assert_int_equal(proc_ring_init(&r, 3), 0);
    const char *in[] = {"one", "two", "three", "four", "five"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(proc_ring_push(&r, in[i], strlen(in[i])), 0);
    sbuf b = SBUF_INIT;
    proc_ring_join(&r, 0, &b);
    assert_string_equal(sbuf_str(&b), "three\nfour\nfive\n");
    sbuf_reset(&b);
    proc_ring_join(&r, 2, &b);
    assert_string_equal(sbuf_str(&b), "four\nfive\n");
    sbuf_free(&b);
    proc_ring_free(&r);

    char out[64];
    const char *colored = "\x1b[34;1m[INFO ]\x1b[0m x \x1b]0;title\x07y\x1b(Bz";
    assert_int_equal(proc_strip_ansi(out, sizeof(out), colored, strlen(colored)), 12);
    assert_string_equal(out, "[INFO ] x yz");
    assert_int_equal(proc_strip_ansi(out, 4, "abcdef", 6), 3);
    assert_string_equal(out, "abc");
}

static void test_classify_contract_signatures(void **state)
{
    (void)state;
    const proc_pattern *L = proc_patterns_llama_server;
    const proc_pattern *S = proc_patterns_sd;
    const char *port = "E srv         start: couldn't bind HTTP server socket, hostname: "
                       "127.0.0.1, port: 8080\n";
    assert_int_equal(proc_classify(L, port, strlen(port)), PROC_CAUSE_PORT);
    const char *magic = "E gguf_init_from_reader: invalid magic characters: 'abcd', expected "
                        "'GGUF'\nE llama_model_load: error loading model\n";
    assert_int_equal(proc_classify(L, magic, strlen(magic)), PROC_CAUSE_BAD_MODEL);
    const char *oom = "E ggml_aligned_malloc: insufficient memory (attempted to allocate "
                      "2048.00 MB)\nE llama_init_from_model: failed to initialize the context\n";
    assert_int_equal(proc_classify(L, oom, strlen(oom)), PROC_CAUSE_OOM);
    const char *arg = "error: invalid argument: --bogus-flag\n";
    assert_int_equal(proc_classify(L, arg, strlen(arg)), PROC_CAUSE_BAD_ARG);
    assert_int_equal(proc_classify(L, "segfault", 8), PROC_CAUSE_UNKNOWN);
    assert_int_equal(proc_classify(NULL, arg, strlen(arg)), PROC_CAUSE_UNKNOWN);

    const char *sd_oom = "ggml_aligned_malloc: insufficient memory (attempted to allocate "
                         "235.06 MB)\n[ERROR] ggml_extend.hpp:1989 - clip prepare graph weights "
                         "failed\n";
    assert_int_equal(proc_classify(S, sd_oom, strlen(sd_oom)), PROC_CAUSE_OOM);
    const char *sd_model = "[ERROR] stable-diffusion.cpp:715  - init model loader from file "
                           "failed: '/m.gguf'\n";
    assert_int_equal(proc_classify(S, sd_model, strlen(sd_model)), PROC_CAUSE_BAD_MODEL);
    const char *sd_arg = "terminate called after throwing an instance of "
                         "'std::invalid_argument'\n  what():  stoi\n";
    assert_int_equal(proc_classify(S, sd_arg, strlen(sd_arg)), PROC_CAUSE_BAD_ARG);
    assert_string_equal(proc_cause_name(PROC_CAUSE_OOM), "oom");
}

/* ---- supervised children -------------------------------------------------- */

static void test_crash_at_start(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    const char *argv[] = {ptu_child_path(), "--err", "error: invalid argument: --bogus-flag\\n",
                          "--exit",         "1",     NULL};
    sup_opts o = {.name = "crash", .argv = argv, .patterns = proc_patterns_llama_server};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int f = hx_wait_state(&h, SUP_FAILED, 0, 10000);
    assert_true(f >= 0);
    int c = hx_wait_state(&h, SUP_CRASHED, 0, 0);
    assert_true(c >= 0 && c < f);
    hx_event *e = &h.events[c];
    assert_int_equal(e->ev.reaped, 1);
    assert_int_equal(e->ev.exited, 1);
    assert_int_equal(e->ev.exit_code, 1);
    assert_int_equal(e->ev.cause, PROC_CAUSE_BAD_ARG);
    assert_non_null(strstr(e->tail, "invalid argument: --bogus-flag"));
    assert_int_equal(h.events[f].ev.cause, PROC_CAUSE_BAD_ARG);
    assert_int_equal(count_state(&h, SUP_STARTED), 1); /* no restart: restart_max 0 */
    assert_int_equal(sup_pid(h.s), 0);
    hx_done(&h);
}

static void test_exec_failure_is_failed(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    const char *argv[] = {"/nonexistent/llama-server", NULL};
    sup_opts o = {.name = "noexec", .argv = argv, .restart_max = 3};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    genai_error e;
    assert_int_equal(sup_start(h.s, &e), -ENOENT);
    assert_int_equal(sup_get_state(h.s), SUP_FAILED);
    assert_int_equal(h.nevents, 1);
    assert_int_equal(h.events[0].ev.cause, PROC_CAUSE_EXEC);
    assert_non_null(strstr(h.events[0].reason, "/nonexistent/llama-server"));
    hx_done(&h);
}

static void test_die_while_loading_reported_at_once(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    int port = tu_free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    /* Answers 503 for 400 ms (loading), then dies with an OOM signature. */
    const char *argv[] = {ptu_child_path(),
                          "--ready-after-ms",
                          "600000",
                          "--serve-for-ms",
                          "400",
                          "--serve",
                          ps,
                          "--err",
                          "E ggml_aligned_malloc: insufficient memory (attempted to allocate "
                          "2048.00 MB)\\n",
                          "--exit",
                          "1",
                          NULL};
    sup_opts o = {.name = "loading",
                  .argv = argv,
                  .check = http_check(&h, port, NULL),
                  .ready_timeout_ms = 60000,
                  .probe_max_ms = 5000, /* probes far apart: the exit watch must see it */
                  .patterns = proc_patterns_llama_server};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int l = hx_wait_state(&h, SUP_LOADING, 0, 10000);
    assert_true(l >= 0);
    assert_non_null(strstr(h.events[l].reason, "503"));
    int c = hx_wait_state(&h, SUP_CRASHED, l, 10000);
    assert_true(c >= 0);
    /* Reported by the exit watch, long before the 60 s deadline and without
     * waiting for the next probe. */
    assert_true(h.events[c].at_ms - h.events[l].at_ms < 3000);
    assert_int_equal(h.events[c].ev.cause, PROC_CAUSE_OOM);
    assert_int_equal(h.events[c].ev.exit_code, 1);
    assert_non_null(strstr(h.events[c].tail, "insufficient memory"));
    assert_true(hx_wait_state(&h, SUP_FAILED, c, 1000) > c);
    sup_check *chk = o.check;
    hx_done(&h);
    chk->destroy(chk);
}

static void test_ready_then_clean_stop(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    int port = tu_free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    const char *argv[] = {ptu_child_path(), "--key", "s3cret", "--ready-after-ms", "200",
                          "--serve",        ps,      NULL};
    sup_opts o = {.name = "ready",
                  .argv = argv,
                  .check = http_check(&h, port, "s3cret"),
                  .ready_timeout_ms = 30000};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    pid_t pid = sup_pid(h.s);
    assert_true(pid > 0);
    int r = hx_wait_state(&h, SUP_READY, 0, 10000);
    assert_true(r >= 0);
    assert_int_equal(h.events[0].ev.state, SUP_STARTED);
    assert_true(count_state(&h, SUP_LOADING) == 1); /* 503 seen before 200 */
    sup_stop(h.s);
    int s = hx_wait_state(&h, SUP_STOPPED, r, 10000);
    assert_true(s >= 0);
    hx_event *e = &h.events[s];
    assert_int_equal(e->ev.stop_how, SUP_STOP_CLEAN);
    assert_int_equal(e->ev.exited, 0);
    assert_int_equal(e->ev.term_signal, SIGTERM);
    assert_int_equal(e->ev.pid, pid);
    assert_int_equal(sup_pid(h.s), 0);
    assert_int_equal(count_state(&h, SUP_CRASHED), 0);
    sup_check *chk = o.check;
    hx_done(&h);
    chk->destroy(chk);
}

static void test_wrong_key_never_ready(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    int port = tu_free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    const char *argv[] = {ptu_child_path(), "--key", "right", "--serve", ps, NULL};
    sup_opts o = {.name = "wrongkey",
                  .argv = argv,
                  .check = http_check(&h, port, "wrong"),
                  .ready_timeout_ms = 800,
                  .stop_grace_ms = 5000};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int c = hx_wait_state(&h, SUP_CRASHED, 0, 10000);
    assert_true(c >= 0);
    assert_int_equal(count_state(&h, SUP_READY), 0);
    assert_int_equal(count_state(&h, SUP_LOADING), 1); /* 401 counts as "not yet" */
    assert_int_equal(h.events[c].ev.cause, PROC_CAUSE_NOT_READY);
    sup_check *chk = o.check;
    hx_done(&h);
    chk->destroy(chk);
}

static void test_hang_before_ready_hits_deadline(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    int port = tu_free_port(); /* nobody listens: no answer at all */
    const char *argv[] = {ptu_child_path(), "--err", "loading model\\n", "--hang", NULL};
    sup_opts o = {
        .name = "hang", .argv = argv, .check = http_check(&h, port, NULL), .ready_timeout_ms = 500};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    int64_t t0 = tu_now_ms();
    assert_int_equal(sup_start(h.s, NULL), 0);
    int f = hx_wait_state(&h, SUP_FAILED, 0, 10000);
    assert_true(f >= 0);
    assert_true(h.events[f].at_ms - t0 >= 500);
    int st = hx_wait_state(&h, SUP_STOPPING, 0, 0);
    int c = hx_wait_state(&h, SUP_CRASHED, 0, 0);
    assert_true(st >= 0 && c > st);
    assert_int_equal(h.events[c].ev.cause, PROC_CAUSE_NOT_READY);
    assert_int_equal(h.events[c].ev.term_signal, SIGTERM);
    assert_non_null(strstr(h.events[c].reason, "not ready within 500 ms"));
    assert_non_null(strstr(h.events[c].tail, "loading model"));
    sup_check *chk = o.check;
    hx_done(&h);
    chk->destroy(chk);
}

static int saw_armed(hx *h)
{
    return strstr(h->out_lines, "armed") != NULL;
}

static void stop_escalation(const char *mode, sup_stop_how want_how, int want_signal, int want_code)
{
    hx h;
    hx_init(&h);
    const char *argv[] = {ptu_child_path(), "--ignore-term", mode, "--out",
                          "armed\\n",       "--hang",        NULL};
    sup_opts o = {.name = "stubborn", .argv = argv, .stop_grace_ms = 200, .stop_term2_ms = 200};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    assert_int_equal(sup_get_state(h.s), SUP_READY); /* no check */
    /* Wait until the handler is installed (the line comes after it). */
    assert_true(hx_wait(&h, saw_armed, 10000));
    int64_t t0 = tu_now_ms();
    sup_stop(h.s);
    int s = hx_wait_state(&h, SUP_STOPPED, 0, 10000);
    assert_true(s >= 0);
    int64_t took = tu_now_ms() - t0;
    hx_event *e = &h.events[s];
    assert_int_equal(e->ev.stop_how, want_how);
    if (want_signal != 0) {
        assert_int_equal(e->ev.exited, 0);
        assert_int_equal(e->ev.term_signal, want_signal);
        assert_true(took >= 400);
    } else {
        assert_int_equal(e->ev.exited, 1);
        assert_int_equal(e->ev.exit_code, want_code);
        assert_true(took >= 200);
    }
    assert_true(took < 5000); /* bounded */
    hx_done(&h);
}

static void test_ignore_all_sigterm_escalates_to_sigkill(void **state)
{
    (void)state;
    stop_escalation("all", SUP_STOP_KILLED, SIGKILL, 0);
}

static void test_ignore_first_sigterm_exits_on_second(void **state)
{
    (void)state;
    stop_escalation("first", SUP_STOP_SECOND_TERM, 0, 1);
}

static void test_restart_backoff_then_failed(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    const char *argv[] = {ptu_child_path(), "--err", "boom\\n", "--exit", "3", NULL};
    sup_opts o = {.name = "flappy", .argv = argv, .restart_max = 2, .backoff_ms = 1000};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int f = hx_wait_state(&h, SUP_FAILED, 0, 20000);
    assert_true(f >= 0);
    /* three deaths: start, crash, backoff, start, crash, backoff, start, crash, failed */
    assert_int_equal(count_state(&h, SUP_STARTED), 3);
    assert_int_equal(count_state(&h, SUP_CRASHED), 3);
    assert_int_equal(count_state(&h, SUP_BACKOFF), 2);
    int64_t starts[3];
    int k = 0;
    for (int i = 0; i < h.nevents; i++) {
        if (h.events[i].ev.state == SUP_STARTED)
            starts[k++] = h.events[i].at_ms;
    }
    assert_true(starts[1] - starts[0] >= 1000); /* at least a second apart */
    assert_true(starts[2] - starts[1] >= 2000); /* doubled */
    assert_non_null(strstr(h.events[f].reason, "3 deaths"));
    assert_int_equal(h.events[f].ev.restarts, 3);
    /* sup_start after FAILED starts again with a fresh tally */
    assert_int_equal(sup_start(h.s, NULL), 0);
    sup_stop(h.s);
    assert_true(hx_wait_state(&h, SUP_STOPPED, f, 10000) > f);
    hx_done(&h);
}

static void test_watchdog_restarts_hung_child(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    int port = tu_free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    /* Healthy for 500 ms, then stops answering but stays alive. */
    const char *argv[] = {ptu_child_path(), "--serve-for-ms", "500", "--serve", ps, "--hang", NULL};
    sup_opts o = {.name = "watchdog",
                  .argv = argv,
                  .check = http_check(&h, port, NULL),
                  .watchdog_interval_ms = 100,
                  .watchdog_failures = 2,
                  .restart_max = 1,
                  .stop_grace_ms = 1000};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int c = hx_wait_state(&h, SUP_CRASHED, 0, 10000);
    assert_true(c >= 0);
    assert_int_equal(h.events[c].ev.cause, PROC_CAUSE_HANG);
    assert_true(hx_wait_state(&h, SUP_READY, 0, 0) < c);
    /* restarted after the backoff and ready again */
    int r2 = hx_wait_state(&h, SUP_READY, c, 10000);
    assert_true(r2 > c);
    sup_stop(h.s);
    assert_true(hx_wait_state(&h, SUP_STOPPED, r2, 10000) > r2);
    sup_check *chk = o.check;
    hx_done(&h);
    chk->destroy(chk);
}

static void test_child_sees_only_stdio_fds(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    /* A server child with an HTTP check, so that curl sockets, pipes, the
     * pidfd and the loop's own fds all exist when the second child starts. */
    int port = tu_free_port();
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    const char *server_argv[] = {ptu_child_path(), "--serve", ps, NULL};
    sup_opts so = {.name = "server",
                   .argv = server_argv,
                   .check = http_check(&h, port, NULL),
                   .watchdog_interval_ms = 20,
                   .watchdog_failures = 100};
    assert_int_equal(hx_new_sup(&h, &so), 0);
    sup *server = h.s;
    assert_int_equal(sup_start(server, NULL), 0);
    assert_true(hx_wait_state(&h, SUP_READY, 0, 10000) >= 0);
    assert_true(ptu_all_fds_cloexec());

    const char *argv[] = {ptu_child_path(), "--fds", "--ppid", NULL};
    sup_opts o = {.name = "fds", .argv = argv, .oneshot = 1};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    int from = h.nevents;
    assert_true(hx_wait_state(&h, SUP_STOPPED, from - 1, 10000) >= 0);
    assert_non_null(strstr(h.out_lines, "fds: 0 1 2\n"));
    char ppid[64];
    snprintf(ppid, sizeof(ppid), "ppid: %ld\n", (long)getpid());
    assert_non_null(strstr(h.out_lines, ppid));
    sup_free(h.s);
    h.s = server;
    sup_stop(server);
    assert_true(hx_wait_state(&h, SUP_STOPPED, from, 10000) >= 0);
    sup_check *chk = so.check;
    hx_done(&h);
    chk->destroy(chk);
}

static void test_lines_and_log_rotation(void **state)
{
    (void)state;
    hx h;
    hx_init(&h);
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/proc-logs-%ld",
             getenv("GENAI_HOME") ? getenv("GENAI_HOME") : "/tmp", (long)getpid());
    const char *argv[] = {ptu_child_path(), "--out",      "a\\nb\\r\\nc\\rd\\e[31mred\\e[0m\\n",
                          "--err",          "e1\\ne2\\n", "--big",
                          "3000",           NULL};
    sup_opts o = {.name = "chatty",
                  .argv = argv,
                  .oneshot = 1,
                  .log_dir = dir,
                  .log_max_bytes = 1000,
                  .log_keep = 2};
    assert_int_equal(hx_new_sup(&h, &o), 0);
    assert_int_equal(sup_start(h.s, NULL), 0);
    assert_true(hx_wait_state(&h, SUP_STOPPED, 0, 10000) >= 0);
    assert_memory_equal(h.out_lines, "a\nb\nc\nd\x1b[31mred\x1b[0m\n", 18);
    assert_int_equal(h.nlines[2], 2);
    assert_int_equal(h.nlines[1], 4 + 30);
    sbuf t = SBUF_INIT;
    sup_tail(h.s, 2, 0, &t);
    assert_string_equal(sbuf_str(&t), "e1\ne2\n");
    sbuf_free(&t);
    hx_done(&h);

    /* 3 KB of output through a 1000-byte cap: the current file and two old
     * ones, each under the cap, and no third. */
    char path[512];
    struct stat st;
    const char *suffix[] = {"", ".1", ".2"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/chatty.log%s", dir, suffix[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0 && st.st_size <= 1000);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/chatty.log.3", dir);
    assert_int_not_equal(stat(path, &st), 0);
    rmdir(dir);
}

static void test_child_dies_with_sigkilled_parent(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t helper = fork();
    assert_true(helper >= 0);
    if (helper == 0) {
        /* The helper plays genai: supervises a child that ignores SIGTERM,
         * reports its pid, and waits to be SIGKILLed. */
        close(p[0]);
        hx h;
        hx_init(&h);
        const char *argv[] = {ptu_child_path(), "--ignore-term", "all", "--hang", NULL};
        sup_opts o = {.name = "orphan", .argv = argv};
        if (hx_new_sup(&h, &o) != 0 || sup_start(h.s, NULL) != 0)
            _exit(1);
        pid_t child = sup_pid(h.s);
        if (write(p[1], &child, sizeof(child)) != (ssize_t)sizeof(child))
            _exit(1);
        for (;;)
            uv_run(&h.uv, UV_RUN_DEFAULT);
    }
    close(p[1]);
    pid_t child = 0;
    assert_int_equal(read(p[0], &child, sizeof(child)), (ssize_t)sizeof(child));
    close(p[0]);
    assert_true(child > 0);
    assert_int_equal(kill(child, 0), 0); /* alive while the helper lives */
    assert_int_equal(kill(helper, SIGKILL), 0);
    assert_int_equal(waitpid(helper, NULL, 0), helper);
    assert_true(tu_wait_pid_gone(child, 5000));
}

int main(void)
{
    ptu_fd_baseline();
    ptu_warm_up();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_splitting_every_boundary),
        cmocka_unit_test(test_long_lines_are_cut),
        cmocka_unit_test(test_ring_and_ansi),
        cmocka_unit_test(test_classify_contract_signatures),
        cmocka_unit_test_setup_teardown(test_crash_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_failure_is_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_die_while_loading_reported_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_then_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_never_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_before_ready_hits_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignore_all_sigterm_escalates_to_sigkill, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ignore_first_sigterm_exits_on_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_backoff_then_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_restarts_hung_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_sees_only_stdio_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lines_and_log_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_dies_with_sigkilled_parent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
