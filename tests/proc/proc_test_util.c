/*
 * proc_test_util.c - see proc_test_util.h.
 */
#include "proc_test_util.h"

#include "core/http_client.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *ptu_child_path(void)
{
    return PROC_CHILD_PATH; /* set by tests/proc/CMakeLists.txt */
}

static int g_inherited[64];
static int g_ninherited;

void ptu_fd_baseline(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    struct dirent *e;
    g_ninherited = 0;
    while ((e = readdir(d)) != NULL && g_ninherited < 64) {
        if (e->d_name[0] != '.')
            g_inherited[g_ninherited++] = (int)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
}

static int inherited(long fd)
{
    for (int i = 0; i < g_ninherited; i++) {
        if (g_inherited[i] == fd)
            return 1;
    }
    return 0;
}

int ptu_all_fds_cloexec(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        long fd = strtol(e->d_name, NULL, 10);
        if (fd <= 2 || fd == dirfd(d) || inherited(fd))
            continue;
        int fl = fcntl((int)fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) {
            char link[64], target[256] = "";
            snprintf(link, sizeof(link), "/proc/self/fd/%ld", fd);
            ssize_t n = readlink(link, target, sizeof(target) - 1);
            if (n > 0)
                target[n] = '\0';
            fprintf(stderr, "fd %ld (%s) is not close-on-exec\n", fd, target);
            ok = 0;
        }
    }
    closedir(d);
    return ok;
}

/* The four below moved to tests/testutil; tests/orch and bench/orch still
 * call them by these names. */
int ptu_count_fds(void)
{
    return tu_fd_count();
}

int64_t ptu_now_ms(void)
{
    return tu_now_ms();
}

int ptu_free_port(void)
{
    return tu_free_port();
}

int ptu_wait_pid_gone(pid_t pid, int timeout_ms)
{
    return tu_wait_pid_gone(pid, timeout_ms);
}

void ptu_warm_up(void)
{
    uv_loop_t uv;
    uv_signal_t sig;
    http_client *c = NULL;
    uv_loop_init(&uv);
    uv_signal_init(&uv, &sig); /* libuv's global signal pipe, kept for good */
    uv_close((uv_handle_t *)&sig, NULL);
    http_client_new(&uv, &c, NULL); /* curl_global_init */
    http_client_free(c);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_loop_close(&uv);
}
