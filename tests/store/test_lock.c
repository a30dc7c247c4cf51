/*
 * test_lock.c - the store's flock-based locks: the lock file is gone once
 * released, a busy lock is reported (try) or waited for (acquire, with the
 * wait callback and cancel), a lock file left by a killed holder is taken
 * over and removed, and several processes hammering one lock, each removing
 * the file on release, are still mutually exclusive.
 */
#include "cmocka_all.h"

#include "testutil/testutil.h"

#include "store/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
    char dir[128];
    char lock[256];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tu_mkdtemp(f->dir, sizeof(f->dir), "lock"), 0);
    snprintf(f->lock, sizeof(f->lock), "%s/x.lock", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void test_release_removes_the_file(void **state)
{
    struct fx *f = *state;
    int fds = tu_fd_count();
    store_lock lk = STORE_LOCK_INIT;
    genai_error e;
    assert_int_equal(store_lock_acquire(&lk, f->lock, NULL, NULL, NULL, &e), 0);
    assert_true(tu_size(f->lock) >= 0);
    store_lock_release(&lk);
    assert_int_equal(tu_size(f->lock), -1);
    assert_int_equal(lk.fd, -1);
    store_lock_release(&lk); /* not held: nothing happens */
    store_lock_release(NULL);
    assert_int_equal(tu_fd_count(), fds);
}

/* A child that holds the lock until it reads a byte from its pipe. */
static pid_t holder(const char *path, int *release_fd)
{
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_lock lk = STORE_LOCK_INIT;
        genai_error e;
        if (store_lock_acquire(&lk, path, NULL, NULL, NULL, &e) < 0)
            _exit(2);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(3);
        if (c == 'k')
            _exit(0); /* dies holding: the name stays, the flock goes */
        store_lock_release(&lk);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    *release_fd = go[1];
    return pid;
}

static void finish(pid_t pid, int release_fd, char how)
{
    assert_int_equal(write(release_fd, &how, 1), 1);
    close(release_fd);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_try_reports_a_busy_lock(void **state)
{
    struct fx *f = *state;
    int rel;
    pid_t pid = holder(f->lock, &rel);
    store_lock lk = STORE_LOCK_INIT;
    genai_error e;
    assert_int_equal(store_lock_try(&lk, f->lock, &e), GENAI_EBUSY);
    assert_non_null(strstr(e.detail, f->lock));
    assert_int_equal(lk.fd, -1);
    assert_true(tu_size(f->lock) >= 0); /* still the holder's */
    finish(pid, rel, 'r');
    assert_int_equal(tu_size(f->lock), -1);
    assert_int_equal(store_lock_try(&lk, f->lock, &e), 0);
    store_lock_release(&lk);
}

static void on_wait(void *ud)
{
    int *calls = ud;
    (*calls)++;
}

static void test_acquire_waits_and_cancels(void **state)
{
    struct fx *f = *state;
    int rel;
    pid_t pid = holder(f->lock, &rel);
    atomic_int cancel = 1;
    int calls = 0;
    store_lock lk = STORE_LOCK_INIT;
    genai_error e;
    assert_int_equal(store_lock_acquire(&lk, f->lock, &cancel, on_wait, &calls, &e),
                     GENAI_ECANCELLED);
    assert_int_equal(lk.fd, -1);

    /* Release the holder from a second child after 300 ms; we wait for it. */
    pid_t releaser = fork();
    assert_true(releaser >= 0);
    if (releaser == 0) {
        usleep(300 * 1000);
        char c = 'r';
        _exit(write(rel, &c, 1) == 1 ? 0 : 1);
    }
    atomic_store(&cancel, 0);
    int64_t t0 = tu_now_ms();
    assert_int_equal(store_lock_acquire(&lk, f->lock, &cancel, on_wait, &calls, &e), 1);
    assert_true(tu_now_ms() - t0 >= 250);
    assert_int_equal(calls, 1); /* told once, not every poll */
    assert_true(tu_size(f->lock) >= 0);
    store_lock_release(&lk);
    assert_int_equal(tu_size(f->lock), -1);
    int st = 0;
    assert_int_equal(waitpid(releaser, &st, 0), releaser);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(rel);
}

static void test_lock_left_by_a_dead_holder(void **state)
{
    struct fx *f = *state;
    int rel;
    pid_t pid = holder(f->lock, &rel);
    finish(pid, rel, 'k');
    assert_true(tu_size(f->lock) >= 0); /* the name outlives the process */
    store_lock lk = STORE_LOCK_INIT;
    genai_error e;
    assert_int_equal(store_lock_try(&lk, f->lock, &e), 0);
    store_lock_release(&lk);
    assert_int_equal(tu_size(f->lock), -1);
}

/*
 * Mutual exclusion with the file removed on every release. Each process
 * takes the lock, creates an "inside" marker with O_EXCL (a second process
 * inside makes that fail), bumps a counter file by read-modify-write, and
 * lets go. Without the inode check in store_lock_acquire, a process that
 * opened the old file just before it was removed locks that orphan while
 * another locks the new file, and the marker catches it.
 */
#define WORKERS 4
#define ROUNDS 400

static int worker(const char *lock, const char *inside, const char *counter)
{
    for (int i = 0; i < ROUNDS; i++) {
        store_lock lk = STORE_LOCK_INIT;
        genai_error e;
        if (store_lock_acquire(&lk, lock, NULL, NULL, NULL, &e) < 0)
            return 2;
        int m = open(inside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (m < 0)
            return 3; /* somebody else is inside */
        close(m);
        char buf[32] = {0};
        int fd = open(counter, O_RDWR | O_CLOEXEC);
        if (fd < 0 || pread(fd, buf, sizeof(buf) - 1, 0) < 0)
            return 4;
        long n = strtol(buf, NULL, 10) + 1;
        int len = snprintf(buf, sizeof(buf), "%ld\n", n);
        if (pwrite(fd, buf, (size_t)len, 0) != len)
            return 4;
        close(fd);
        if (unlink(inside) != 0)
            return 5;
        store_lock_release(&lk);
    }
    return 0;
}

static void test_processes_exclude_each_other(void **state)
{
    struct fx *f = *state;
    char inside[256], counter[256];
    snprintf(inside, sizeof(inside), "%s/inside", f->dir);
    snprintf(counter, sizeof(counter), "%s/counter", f->dir);
    assert_int_equal(tu_write(counter, "0\n", 2), 0);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(worker(f->lock, inside, counter));
    }
    for (int i = 0; i < WORKERS; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    size_t n = 0;
    unsigned char *b = tu_read(counter, &n);
    assert_non_null(b);
    b[n] = '\0';
    assert_int_equal(strtol((char *)b, NULL, 10), WORKERS * ROUNDS);
    free(b);
    assert_int_equal(tu_size(f->lock), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_release_removes_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try_reports_a_busy_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acquire_waits_and_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_left_by_a_dead_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_exclude_each_other, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
