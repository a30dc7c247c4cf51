/*
 * proc_test_util.c - see proc_test_util.h.
 */
#include "proc_test_util.h"

#include "core/http_client.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const char *ptu_child_path(void)
{
    return PROC_CHILD_PATH; /* set by tests/proc/CMakeLists.txt */
}

int ptu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1;
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

int64_t ptu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ptu_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static int pid_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the state follows "(comm) " */
    if (rp == NULL || rp[1] == '\0' || rp[2] == '\0')
        return 0;
    return rp[2] != 'Z' && rp[2] != 'X';
}

int ptu_wait_pid_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = ptu_now_ms() + timeout_ms;
    for (;;) {
        if (!pid_running(pid))
            return 1;
        if (ptu_now_ms() >= deadline)
            return 0;
        /* Polling /proc: nothing to wait on for a process that is not ours. */
        poll(NULL, 0, 5);
    }
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
