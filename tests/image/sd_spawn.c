/*
 * sd_spawn.c - child processes for the image tests (see sd_spawn.h).
 */
#include "sd_spawn.h"

#include "core/alloc.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int sd_child_start(sd_child *c, const char *const *argv, const char *const *env)
{
    memset(c, 0, sizeof(*c));
    c->out_fd = c->err_fd = -1;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(pe, O_CLOEXEC) != 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        return -e;
    }
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env])
        n_env++;
    while (env && env[n_extra])
        n_extra++;
    char **envp = mem_calloc(n_env + n_extra + 1, sizeof(*envp));
    size_t k = 0;
    for (size_t i = 0; envp && i < n_env; i++) {
        /* An extra NAME=... replaces the inherited one. */
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < n_extra; j++)
            replaced |= strncmp(env[j], environ[i], nl) == 0;
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; envp && j < n_extra; j++)
        envp[k++] = (char *)env[j];

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    int rc = envp ? posix_spawn(&c->pid, argv[0], &fa, NULL, (char *const *)argv, envp) : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    mem_free(envp);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        return -rc;
    }
    c->out_fd = po[0];
    c->err_fd = pe[0];
    c->out = mem_calloc(1, 1);
    c->err = mem_calloc(1, 1);
    return 0;
}

static int drain(int *fd, char **buf, size_t *len)
{
    char tmp[65536];
    ssize_t n = read(*fd, tmp, sizeof(tmp));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0) {
        close(*fd);
        *fd = -1;
        return 0;
    }
    char *nb = mem_realloc(*buf, *len + (size_t)n + 1);
    if (nb == NULL)
        return -ENOMEM;
    memcpy(nb + *len, tmp, (size_t)n);
    *len += (size_t)n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

/* One poll round, at most wait_ms. */
static int pump(sd_child *c, int wait_ms)
{
    struct pollfd p[2];
    int n = 0;
    if (c->out_fd >= 0)
        p[n++] = (struct pollfd){c->out_fd, POLLIN, 0};
    if (c->err_fd >= 0)
        p[n++] = (struct pollfd){c->err_fd, POLLIN, 0};
    if (n == 0)
        return 0;
    int r = poll(p, (nfds_t)n, wait_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        int rc = p[i].fd == c->out_fd ? drain(&c->out_fd, &c->out, &c->out_len)
                                      : drain(&c->err_fd, &c->err, &c->err_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sd_child_read_until(sd_child *c, const char *needle, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        if (needle && c->out && strstr(c->out, needle))
            return 1;
        if (c->out_fd < 0 && c->err_fd < 0)
            return 0;
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        int rc = pump(c, (int)(left > 100 ? 100 : left));
        if (rc < 0)
            return rc;
    }
}

static void decode(sd_child *c, int status)
{
    c->reaped = 1;
    c->exited = WIFEXITED(status);
    c->exit_code = c->exited ? WEXITSTATUS(status) : -1;
    c->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

int sd_child_wait(sd_child *c, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    while (c->out_fd >= 0 || c->err_fd >= 0) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            goto timeout;
        int rc = pump(c, (int)(left > 100 ? 100 : left));
        if (rc < 0)
            return rc;
    }
    while (!c->reaped) {
        int status;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            decode(c, status);
            break;
        }
        if (tu_now_ms() >= deadline)
            goto timeout;
        /* Output ended but the child lives on: poll its exit every 5 ms. */
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
timeout:
    kill(c->pid, SIGKILL);
    return -ETIMEDOUT;
}

void sd_child_free(sd_child *c)
{
    if (c->pid > 0 && !c->reaped) {
        int status;
        kill(c->pid, SIGKILL);
        if (waitpid(c->pid, &status, 0) == c->pid)
            decode(c, status);
    }
    if (c->out_fd >= 0)
        close(c->out_fd);
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->out_fd = c->err_fd = -1;
    mem_free(c->out);
    mem_free(c->err);
    c->out = c->err = NULL;
}

int sd_child_run(sd_child *c, const char *const *argv, const char *const *env, int timeout_ms)
{
    int rc = sd_child_start(c, argv, env);
    if (rc < 0)
        return rc;
    return sd_child_wait(c, timeout_ms);
}
