/*
 * bench_util.c - see bench_util.h.
 */
#include "bench_util.h"

#include <arpa/inet.h>
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

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double bench_now_ms(void)
{
    return (double)bench_now_ns() / 1e6;
}

int bench_arg_int(const char *prog, const char *text, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "%s: '%s' is not a number in %d..%d\n", prog, text, lo, hi);
        exit(2);
    }
    return (int)v;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

pid_t bench_spawn(const char *const *argv, int quiet_stderr)
{
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR | O_CLOEXEC); /* dup2 clears it */
        dup2(dn, 0);
        dup2(dn, 1);
        if (quiet_stderr)
            dup2(dn, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int bench_health(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
        const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (write(s, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
            char buf[512];
            ssize_t n = read(s, buf, sizeof(buf) - 1);
            ok = n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
        }
    }
    close(s);
    return ok;
}

void bench_wait_health(int port)
{
    int delay = 50;
    for (;;) {
        poll(NULL, 0, delay);
        if (bench_health(port))
            break;
        delay = delay * 2 > 500 ? 500 : delay * 2;
    }
}
