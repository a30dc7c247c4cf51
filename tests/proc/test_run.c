/*
 * test_run.c - proc_run_capture() against the proc_child double: exit codes,
 * signals, the deadline, exec failure, big output, and no leaked fds or
 * children.
 */
#include "cmocka_all.h"

#include "proc/run.h"
#include "proc_test_util.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static void test_exit_code_and_streams(void **state)
{
    (void)state;
    int fds_before = tu_fd_count();
    const char *argv[] = {ptu_child_path(), "--out",  "hello\\n", "--err",
                          "oops\\n",        "--exit", "7",        NULL};
    proc_capture c;
    genai_error e;
    assert_int_equal(proc_run_capture(argv, 10000, 1 << 20, &c, &e), 0);
    assert_int_equal(c.exited, 1);
    assert_int_equal(c.exit_code, 7);
    assert_int_equal(c.term_signal, 0);
    assert_string_equal(c.out, "hello\n");
    assert_int_equal(c.out_len, 6);
    assert_string_equal(c.err, "oops\n");
    assert_int_equal(c.truncated, 0);
    proc_capture_free(&c);
    assert_null(c.out);
    assert_int_equal(tu_fd_count(), fds_before);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* nothing left to reap */
    assert_int_equal(errno, ECHILD);
}

static void test_killed_by_signal(void **state)
{
    (void)state;
    const char *argv[] = {ptu_child_path(), "--err", "about to abort\\n", "--signal", "6", NULL};
    proc_capture c;
    assert_int_equal(proc_run_capture(argv, 10000, 4096, &c, NULL), 0);
    assert_int_equal(c.exited, 0);
    assert_int_equal(c.term_signal, SIGABRT);
    assert_int_equal(c.exit_code, -1);
    assert_string_equal(c.err, "about to abort\n");
    assert_string_equal(c.out, "");
    proc_capture_free(&c);
}

static void test_timeout_kills_and_reaps(void **state)
{
    (void)state;
    int fds_before = tu_fd_count();
    const char *argv[] = {ptu_child_path(), "--err", "loading\\n", "--ignore-term", "all",
                          "--hang",         NULL};
    proc_capture c = {.exit_code = 12345};
    genai_error e;
    int64_t t0 = tu_now_ms();
    assert_int_equal(proc_run_capture(argv, 300, 4096, &c, &e), GENAI_ETIMEOUT);
    int64_t took = tu_now_ms() - t0;
    assert_true(took >= 300);
    assert_true(took < 10000);            /* bounded; generous for a loaded machine */
    assert_int_equal(c.exit_code, 12345); /* untouched on failure */
    assert_non_null(strstr(e.detail, "did not finish within 300 ms"));
    assert_non_null(strstr(e.detail, "loading"));
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(tu_fd_count(), fds_before);
}

static void test_exec_failure(void **state)
{
    (void)state;
    int fds_before = tu_fd_count();
    genai_error e;
    proc_capture c;
    const char *missing[] = {"/nonexistent/genai-no-such-program", NULL};
    assert_int_equal(proc_run_capture(missing, 1000, 4096, &c, &e), -ENOENT);
    assert_non_null(strstr(e.detail, "genai-no-such-program"));
    const char *not_in_path[] = {"genai-no-such-program-in-path", NULL};
    assert_int_equal(proc_run_capture(not_in_path, 1000, 4096, &c, &e), -ENOENT);
    /* A directory passes the PATH lookup (it has a '/') and fails in execve,
     * so this exercises the errno pipe from the forked child. */
    const char *dir[] = {"/tmp", NULL};
    assert_int_equal(proc_run_capture(dir, 1000, 4096, &c, &e), -EACCES);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(tu_fd_count(), fds_before);
}

static void test_path_lookup(void **state)
{
    (void)state;
    const char *argv[] = {"true", NULL};
    proc_capture c;
    assert_int_equal(proc_run_capture(argv, 10000, 16, &c, NULL), 0);
    assert_int_equal(c.exited, 1);
    assert_int_equal(c.exit_code, 0);
    proc_capture_free(&c);
}

static void test_big_output_truncated(void **state)
{
    (void)state;
    /* 8 MiB through a 64 KiB pipe: the child only finishes if the rest is
     * drained after the cap. */
    const char *argv[] = {ptu_child_path(), "--big", "8388608", "--err", "done\\n", NULL};
    proc_capture c;
    assert_int_equal(proc_run_capture(argv, 30000, 100000, &c, NULL), 0);
    assert_int_equal(c.exited, 1);
    assert_int_equal(c.exit_code, 0);
    assert_int_equal(c.out_len, 100000);
    assert_int_equal(c.truncated, 1);
    assert_int_equal(c.out[99], '\n');
    assert_int_equal(c.out[100], 'x');
    assert_int_equal(c.out[100000], '\0');
    assert_string_equal(c.err, "done\n");
    proc_capture_free(&c);

    const char *exact[] = {ptu_child_path(), "--big", "100000", NULL};
    assert_int_equal(proc_run_capture(exact, 30000, 100000, &c, NULL), 0);
    assert_int_equal(c.out_len, 100000);
    assert_int_equal(c.truncated, 0);
    proc_capture_free(&c);
}

static void test_child_sees_only_stdio(void **state)
{
    (void)state;
    const char *argv[] = {ptu_child_path(), "--fds", NULL};
    proc_capture c;
    assert_int_equal(proc_run_capture(argv, 10000, 4096, &c, NULL), 0);
    assert_string_equal(c.out, "fds: 0 1 2\n");
    proc_capture_free(&c);
}

static void test_bad_args(void **state)
{
    (void)state;
    proc_capture c;
    const char *argv[] = {ptu_child_path(), NULL};
    assert_int_equal(proc_run_capture(NULL, 100, 10, &c, NULL), GENAI_EBAD_ARG);
    assert_int_equal(proc_run_capture(argv, 0, 10, &c, NULL), GENAI_EBAD_ARG);
    proc_capture_free(NULL);
}

int main(void)
{
    ptu_fd_baseline();
    ptu_warm_up();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_code_and_streams),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_timeout_kills_and_reaps),
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_path_lookup),
        cmocka_unit_test(test_big_output_truncated),
        cmocka_unit_test(test_child_sees_only_stdio),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
