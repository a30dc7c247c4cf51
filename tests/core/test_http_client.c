/*
 * test_http_client.c - what the loop's HTTP client leaves behind on the
 * server side: a request's connection is closed once its answer is in, even
 * when the server offers keep-alive. An idle kept connection to llama-server
 * holds its exit on SIGTERM (about 110 ms, b11669), so the client talks to
 * its children one connection per request (http_client.c).
 *
 * A thread plays the server on a loopback port: it answers two requests, each
 * on the connection it accepts, with "Connection: keep-alive", then waits
 * (with a deadline) for the client to close that connection.
 */
#include "cmocka_all.h"

#include "core/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 2
#define CLOSE_WAIT_MS 5000

struct server {
    int fd;
    int port;
    int closed[ROUNDS]; /* 1: the client closed round i's connection */
};

/* Reads until the end of the request head; 0, or -1 when the peer left. */
static int read_head(int c)
{
    char buf[2048];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        ssize_t r = recv(c, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            return 0;
    }
    return -1;
}

/* 1 when the peer closes c within CLOSE_WAIT_MS, else 0. */
static int peer_closes(int c)
{
    struct pollfd p = {.fd = c, .events = POLLIN};
    if (poll(&p, 1, CLOSE_WAIT_MS) != 1)
        return 0;
    char b;
    return recv(c, &b, 1, 0) == 0;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 15\r\nConnection: keep-alive\r\n\r\n"
                                "{\"status\":\"ok\"}";
    for (int i = 0; i < ROUNDS; i++) {
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return NULL;
        if (read_head(c) == 0 && send(c, reply, sizeof(reply) - 1, MSG_NOSIGNAL) > 0)
            s->closed[i] = peer_closes(c);
        close(c);
    }
    return NULL;
}

struct call {
    int done;
    int rc;
    long status;
};

static void on_done(void *arg, const http_result *res)
{
    struct call *c = arg;
    c->done = 1;
    c->rc = res->rc;
    c->status = res->status;
}

static void test_connection_closed_after_each_request(void **state)
{
    (void)state;
    struct server s = {0};
    s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(s.fd, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(listen(s.fd, 4), 0);
    s.port = ntohs(sa.sin_port);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve, &s), 0);

    uv_loop_t uv;
    assert_int_equal(uv_loop_init(&uv), 0);
    http_client *hc = NULL;
    genai_error e;
    assert_int_equal(http_client_new(&uv, &hc, &e), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", s.port);
    for (int i = 0; i < ROUNDS; i++) {
        struct call c = {0};
        http_get_opts o = {.url = url, .timeout_ms = 5000, .max_body = 1024};
        assert_int_equal(http_client_get(hc, &o, on_done, &c, NULL), 0);
        while (!c.done)
            uv_run(&uv, UV_RUN_ONCE);
        assert_int_equal(c.rc, 0);
        assert_int_equal(c.status, 200);
    }
    /* The loop keeps running while the server waits for the closes: a
     * client that parked the connection would hold it open all along. */
    while (pthread_tryjoin_np(t, NULL) != 0) {
        uv_run(&uv, UV_RUN_NOWAIT);
        struct timespec nap = {0, 1000000L};
        nanosleep(&nap, NULL);
    }
    for (int i = 0; i < ROUNDS; i++) {
        if (!s.closed[i])
            fail_msg("round %d: the connection was kept open after the answer", i);
    }
    http_client_free(hc);
    uv_run(&uv, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&uv), 0);
    close(s.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_closed_after_each_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
