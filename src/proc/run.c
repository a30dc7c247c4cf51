/*
 * run.c - proc_run_capture(): spawn, read both pipes with poll(), reap.
 *
 * The wait for exit races the pipes: on Linux a pidfd (pidfd_open, 5.3+)
 * sits in the same poll() set as the two pipes, so a child that exits while
 * a grandchild keeps its pipes open is still seen at once. Without pidfd the
 * loop polls waitpid(WNOHANG) every 20 ms instead. The deadline is one
 * CLOCK_MONOTONIC instant; when it passes the child is SIGKILLed (it has not
 * been reaped yet, so the pid is still ours) and reaped.
 */
#include "proc/run.h"

#include "core/alloc.h"
#include "proc/spawn.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NO_PIDFD_POLL_MS = 20 };

typedef struct capbuf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    int truncated;
    int open; /* the fd has not reached EOF */
} capbuf;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_pidfd(pid_t pid)
{
#if defined(__linux__) && defined(SYS_pidfd_open)
    /* pidfd_open returns a close-on-exec fd by definition. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* Reads what is available on fd into b. Returns 0, or -ENOMEM. */
static int drain_into(int fd, capbuf *b)
{
    char chunk[16384];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        b->open = 0; /* treat a read error as the end of the stream */
        return 0;
    }
    if (n == 0) {
        b->open = 0;
        return 0;
    }
    size_t keep = (size_t)n;
    if (keep > b->max - b->len) {
        keep = b->max - b->len;
        b->truncated = 1;
    }
    if (keep == 0)
        return 0;
    if (b->len + keep + 1 > b->cap) {
        size_t want = b->cap == 0 ? 4096 : b->cap;
        while (want < b->len + keep + 1)
            want *= 2;
        if (want > b->max + 1)
            want = b->max + 1;
        char *p = mem_realloc(b->data, want);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = want;
    }
    memcpy(b->data + b->len, chunk, keep);
    b->len += keep;
    b->data[b->len] = '\0';
    return 0;
}

static int finish_buf(capbuf *b)
{
    if (b->data != NULL)
        return 0;
    b->data = mem_alloc(1);
    if (b->data == NULL)
        return -ENOMEM;
    b->data[0] = '\0';
    return 0;
}

int proc_run_capture(const char *const argv[], int timeout_ms, size_t max_output, proc_capture *out,
                     genai_error *err)
{
    if (argv == NULL || argv[0] == NULL || out == NULL || timeout_ms <= 0)
        return err_set(err, GENAI_EBAD_ARG, "proc_run_capture: bad arguments");

    proc_spawn_opts opts = {.argv = argv};
    proc_child child;
    int rc = proc_spawn(&opts, &child, err);
    if (rc < 0)
        return rc;

    int64_t deadline = now_ms() + timeout_ms;
    capbuf bufs[2] = {{.max = max_output, .open = 1}, {.max = max_output, .open = 1}};
    int fds[2] = {child.out_fd, child.err_fd};
    int pidfd = open_pidfd(child.pid);
    int reaped = 0, status = 0, timed_out = 0;

    while (!reaped || bufs[0].open || bufs[1].open) {
        if (!reaped) {
            pid_t w = waitpid(child.pid, &status, WNOHANG);
            if (w == child.pid)
                reaped = 1;
            else if (w < 0 && errno != EINTR) {
                rc = err_errno(err, errno, "waitpid");
                goto kill_child;
            }
            if (reaped && !bufs[0].open && !bufs[1].open)
                break;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd[3];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++) {
            if (bufs[i].open)
                pfd[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        }
        int wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
        if (!reaped) {
            if (pidfd >= 0)
                pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
            else if (wait_ms > NO_PIDFD_POLL_MS)
                wait_ms = NO_PIDFD_POLL_MS;
        }
        int pr = poll(pfd, n, wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            rc = err_errno(err, errno, "poll");
            goto kill_child;
        }
        for (nfds_t k = 0; k < n; k++) {
            if (pfd[k].revents == 0 || pfd[k].fd == pidfd)
                continue;
            int i = pfd[k].fd == fds[0] ? 0 : 1;
            if (drain_into(fds[i], &bufs[i]) < 0) {
                rc = err_set(err, -ENOMEM, "capturing output of '%s'", argv[0]);
                goto kill_child;
            }
        }
    }

    if (timed_out && !reaped) {
        const char *tail = bufs[1].data != NULL ? bufs[1].data : "";
        size_t tl = bufs[1].len;
        if (tl > 300)
            tail += tl - 300;
        rc = err_set(err, GENAI_ETIMEOUT, "'%s' did not finish within %d ms; stderr tail: %s",
                     argv[0], timeout_ms, tail);
        goto kill_child;
    }
    /* A reaped child whose pipes a grandchild still holds at the deadline:
     * the result is known, keep what was read. */
    if (finish_buf(&bufs[0]) < 0 || finish_buf(&bufs[1]) < 0) {
        rc = err_set(err, -ENOMEM, "capturing output of '%s'", argv[0]);
        goto cleanup;
    }
    memset(out, 0, sizeof(*out));
    proc_decode_status(status, &out->exited, &out->exit_code, &out->term_signal);
    out->out = bufs[0].data;
    out->out_len = bufs[0].len;
    out->err = bufs[1].data;
    out->err_len = bufs[1].len;
    out->truncated = bufs[0].truncated || bufs[1].truncated;
    bufs[0].data = bufs[1].data = NULL;
    rc = 0;
    goto cleanup;

kill_child:
    if (!reaped) {
        kill(child.pid, SIGKILL);
        while (waitpid(child.pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
cleanup:
    if (pidfd >= 0)
        close(pidfd);
    close(child.out_fd);
    close(child.err_fd);
    mem_free(bufs[0].data);
    mem_free(bufs[1].data);
    return rc;
}

void proc_capture_free(proc_capture *c)
{
    if (c == NULL)
        return;
    mem_free(c->out);
    mem_free(c->err);
    memset(c, 0, sizeof(*c));
}
