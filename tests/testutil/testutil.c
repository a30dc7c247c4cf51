/*
 * testutil.c - see testutil.h. Plain POSIX calls; the asserting helpers use
 * cmocka, the rest only report.
 */
#include "cmocka_all.h"

#include "testutil.h"

#include "core/alloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tu_mkdtemp(char *out, size_t outsz, const char *tag)
{
    if ((size_t)snprintf(out, outsz, "/tmp/genai-%s-XXXXXX", tag) >= outsz)
        return -1;
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int tu_rm_rf(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}

unsigned char *tu_read(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    unsigned char *buf = mem_alloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            mem_free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (buf != NULL) {
        buf[got] = '\0';
        *len = got;
    }
    return buf;
}

long long tu_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void tu_fill(unsigned char *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)(x >> 7);
    }
}

int tu_wait(int (*cond)(void *arg), void *arg, unsigned ms)
{
    int64_t deadline = tu_now_ms() + (int64_t)ms;
    for (;;) {
        if (cond(arg))
            return 1;
        if (tu_now_ms() >= deadline)
            return 0;
        /* The conditions are files and other processes: nothing to wait on. */
        poll(NULL, 0, 5);
    }
}

int tu_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

int tu_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_free_port(void)
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

/* 1 while /proc/<pid>/stat shows a state other than zombie or dead. */
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

int tu_wait_pid_gone(pid_t pid, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        if (!pid_running(pid))
            return 1;
        if (tu_now_ms() >= deadline)
            return 0;
        /* Polling /proc: nothing to wait on for a process that is not ours. */
        poll(NULL, 0, 5);
    }
}

char *tu_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    char name[64];
    assert_true((size_t)snprintf(name, sizeof(name), "genai-%s-XXXXXX", tag) < sizeof(name));
    char *dir = tu_path(base, name);
    assert_non_null(mkdtemp(dir));
    return dir;
}

void tu_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = tu_path(dir, de->d_name);
        assert_int_equal(unlink(p), 0);
        mem_free(p);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mem_alloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

const char *tu_genai_bin(void)
{
    static char path[1024];
    const char *b = getenv("GENAI_BUILD_DIR");
    assert_non_null(b);
    snprintf(path, sizeof(path), "%s/src/cli/genai", b);
    return path;
}
