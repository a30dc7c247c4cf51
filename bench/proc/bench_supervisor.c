/*
 * bench_supervisor.c - what the supervisor adds to "ready" and to "stopped".
 *
 * Ready: the proc_child double writes CLOCK_MONOTONIC to a file once its
 * /health answers 200; we measure from that instant to the supervisor's READY
 * event, and compare with a baseline in the same run: a plain fork/exec of
 * the same child polled by blocking GETs on the same schedule (50 ms doubling
 * to 500 ms). Stop: from sup_stop to the STOPPED event (reaped, pipes
 * closed), against kill(SIGTERM) + waitpid of the same child.
 *
 * Usage: bench_supervisor [ITERATIONS]   (default 20)
 * Prints medians in ms and the ratios supervisor / baseline.
 */
#include "../../tests/proc/proc_test_util.h"
#include "../../tests/proc/sup_harness.h"

#include "core/alloc.h"
#include "proc/httpcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int64_t read_stamp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    unlink(path);
    return v;
}

/* One blocking GET /health; 1 when it answered 200. */
static int raw_health(int port)
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

static pid_t raw_spawn(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20;
    if (iters < 1 || iters > 1000)
        iters = 20;
    double *sup_ready = mem_calloc((size_t)iters, sizeof(double));
    double *raw_ready = mem_calloc((size_t)iters, sizeof(double));
    double *sup_stop_ms = mem_calloc((size_t)iters, sizeof(double));
    double *raw_stop_ms = mem_calloc((size_t)iters, sizeof(double));
    if (!sup_ready || !raw_ready || !sup_stop_ms || !raw_stop_ms)
        return 1;
    char stamp[256];
    snprintf(stamp, sizeof(stamp), "/tmp/genai-bench-stamp-%ld", (long)getpid());

    for (int i = 0; i < iters; i++) {
        int port = ptu_free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        const char *cargv[] = {ptu_child_path(), "--stamp", stamp, "--serve", ps, NULL};

        /* supervisor */
        hx h;
        hx_init(&h);
        proc_httpcheck_opts co = {
            .port = port, .path = "/health", .json_key = "status", .json_value = "ok"};
        sup_check *chk = NULL;
        sup_opts o = {.name = "bench", .argv = cargv};
        if (proc_httpcheck_new(h.http, &co, &chk, NULL) != 0)
            return 1;
        o.check = chk;
        if (hx_new_sup(&h, &o) != 0 || sup_start(h.s, NULL) != 0)
            return 1;
        int r = hx_wait_state(&h, SUP_READY, 0, 10000);
        int64_t st = read_stamp(stamp);
        if (r < 0 || st < 0)
            return 1;
        sup_ready[i] = (double)(h.events[r].at_ns - st) / 1e6;
        int64_t t0 = now_ns();
        sup_stop(h.s);
        int s = hx_wait_state(&h, SUP_STOPPED, r, 10000);
        if (s < 0)
            return 1;
        sup_stop_ms[i] = (double)(h.events[s].at_ns - t0) / 1e6;
        hx_done(&h);
        chk->destroy(chk);

        /* baseline: fork/exec, blocking polls on the same schedule, kill+waitpid */
        port = ptu_free_port();
        snprintf(ps, sizeof(ps), "%d", port);
        pid_t pid = raw_spawn(cargv);
        int delay = 50;
        for (;;) {
            poll(NULL, 0, delay);
            if (raw_health(port))
                break;
            delay = delay * 2 > 500 ? 500 : delay * 2;
        }
        int64_t seen = now_ns();
        st = read_stamp(stamp);
        raw_ready[i] = (double)(seen - st) / 1e6;
        t0 = now_ns();
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        raw_stop_ms[i] = (double)(now_ns() - t0) / 1e6;
    }
    double sr = median(sup_ready, iters), rr = median(raw_ready, iters);
    double ss = median(sup_stop_ms, iters), rs = median(raw_stop_ms, iters);
    printf("iterations: %d\n", iters);
    printf("ready  (child answers 200 -> event): supervisor %.3f ms, baseline %.3f ms, "
           "ratio %.2f\n",
           sr, rr, rr > 0 ? sr / rr : 0);
    printf("stop   (request -> reaped):          supervisor %.3f ms, baseline %.3f ms, "
           "ratio %.2f\n",
           ss, rs, rs > 0 ? ss / rs : 0);
    mem_free(sup_ready);
    mem_free(raw_ready);
    mem_free(sup_stop_ms);
    mem_free(raw_stop_ms);
    return 0;
}
