/*
 * bench_sse.c - what the HTTP server adds to each streamed event.
 *
 * Both paths start the same way: the bench thread stamps the time and posts
 * a message to the loop thread, which writes one SSE event ("data: N\n\n").
 *   direct:  the loop writes it to a connected loopback TCP socket;
 *   server:  the loop appends it to a streaming reply (http_stream_write),
 *            which resumes the MHD connection, whose thread sends it chunked.
 * The bench thread reads the event from its socket and stamps the time. One
 * event is in flight at a time, with a fixed spacing between events (1 ms by
 * default, as llama-server streams tokens every few ms). The two runs are
 * interleaved in rounds so that noise on a shared machine hits both alike.
 *
 * Usage: bench_http_sse [events per path] [spacing in microseconds]
 */
#include "bench_util.h"
#include "core/config.h"
#include "core/loop.h"
#include "http/routes.h"
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static http_request *g_stream; /* loop thread */
static int g_direct_fd = -1;   /* loop side of the direct socket */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stream_abort(http_request *req, void *arg)
{
    (void)arg;
    g_stream = NULL;
    http_stream_end(req);
}

static void h_stream(http_request *req)
{
    http_stream_begin(req, 200, "text/event-stream", NULL);
    http_req_on_abort(req, stream_abort, NULL);
    http_stream_write(req, ": hi\n\n", 6);
    g_stream = req;
}

static const char sse_event[] = "data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n";

static void write_server(loop *l, void *arg)
{
    (void)l;
    (void)arg;
    if (g_stream != NULL)
        http_stream_write(g_stream, sse_event, sizeof(sse_event) - 1);
}

static void write_direct(loop *l, void *arg)
{
    (void)l;
    (void)arg;
    if (write(g_direct_fd, sse_event, sizeof(sse_event) - 1) < 0)
        perror("write");
}

static void end_stream(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    (void)arg;
    if (g_stream != NULL) {
        http_stream_end(g_stream);
        g_stream = NULL;
    }
    loop_complete(c, 0);
}

static int tcp_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Reads until the end of one event ("\n\n"); chunk framing is skipped. */
static void read_event(int fd)
{
    char buf[512];
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0) {
            fprintf(stderr, "read failed\n");
            exit(1);
        }
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "}\n\n") != NULL)
            return;
        if (got > sizeof(buf) - 64)
            got = 0;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? bench_arg_int("bench_http_sse", argv[1], 10, 1000000) : 2000;
    long spacing = argc > 2 ? bench_arg_int("bench_http_sse", argv[2], 0, 1000000) : 1000;

    loop *l;
    if (loop_start(&l, NULL) < 0)
        return 1;
    genai_config cfg;
    config_init(&cfg);
    cfg.port = 0;
    http_route routes[16];
    memcpy(routes, http_routes, http_n_routes * sizeof(http_route));
    routes[http_n_routes] = (http_route){"GET", "/bench/stream", 0, h_stream};
    http_server_opts o = {
        .loop = l, .config = &cfg, .routes = routes, .n_routes = http_n_routes + 1};
    http_server *s;
    genai_error e;
    if (http_server_start(&o, &s, &e) < 0) {
        fprintf(stderr, "server: %s\n", e.detail);
        return 1;
    }

    /* The direct path: a loopback TCP pair, loop side written by the loop. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    bind(lfd, (struct sockaddr *)&a, sizeof(a));
    listen(lfd, 1);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int direct_rd = tcp_connect(ntohs(a.sin_port));
    g_direct_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    int one = 1;
    setsockopt(g_direct_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    close(lfd);

    int sfd = tcp_connect(http_server_port(s));
    char req[128];
    int rl = snprintf(req, sizeof(req), "GET /bench/stream HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                      http_server_port(s));
    if (write(sfd, req, (size_t)rl) != rl)
        return 1;
    char hdr[1024];
    size_t got = 0;
    while (strstr(hdr, ": hi\n\n") == NULL && got < sizeof(hdr) - 1) {
        ssize_t k = read(sfd, hdr + got, sizeof(hdr) - 1 - got);
        if (k <= 0)
            return 1;
        got += (size_t)k;
        hdr[got] = '\0';
    }

    uint64_t *dir = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *srv = calloc((size_t)n, sizeof(uint64_t));
    for (int i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        loop_post(l, write_direct, NULL);
        read_event(direct_rd);
        dir[i] = now_ns() - t0;
        nap_us(spacing);
        t0 = now_ns();
        loop_post(l, write_server, NULL);
        read_event(sfd);
        srv[i] = now_ns() - t0;
        nap_us(spacing);
    }
    loop_call_wait(l, end_stream, NULL);
    close(sfd);
    close(direct_rd);
    close(g_direct_fd);
    http_server_stop(s);
    loop_stop(l);
    config_free(&cfg);

    qsort(dir, (size_t)n, sizeof(uint64_t), cmp_u64);
    qsort(srv, (size_t)n, sizeof(uint64_t), cmp_u64);
    size_t p50 = (size_t)n / 2, p99 = (size_t)n * 99 / 100;
    printf("events per path: %d, spacing %ld us\n", n, spacing);
    printf("direct write:   median %.1f us, p99 %.1f us\n", (double)dir[p50] / 1e3,
           (double)dir[p99] / 1e3);
    printf("through server: median %.1f us, p99 %.1f us\n", (double)srv[p50] / 1e3,
           (double)srv[p99] / 1e3);
    printf("added by the server: median %+.1f us, p99 %+.1f us (ratio %.2fx median)\n",
           ((double)srv[p50] - (double)dir[p50]) / 1e3, ((double)srv[p99] - (double)dir[p99]) / 1e3,
           (double)srv[p50] / (double)dir[p50]);
    free(dir);
    free(srv);
    return 0;
}
