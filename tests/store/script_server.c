/*
 * script_server.c - scripted HTTP replies for the store tests (see the header).
 *
 * One accept thread, one thread per connection (joined at ss_stop). A
 * self-pipe wakes every blocking wait when the server stops.
 */
#include "script_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SS_MAX_ROUTES 64
#define SS_MAX_LOG 512
#define SS_MAX_CONN 512

struct ss_server {
    int lfd;
    int stop_pipe[2];
    int port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    struct ss_route routes[SS_MAX_ROUTES];
    int cut_left[SS_MAX_ROUTES];
    int stall_left[SS_MAX_ROUTES];
    size_t n_routes;
    struct ss_request log[SS_MAX_LOG];
    size_t n_log;
    pthread_t conns[SS_MAX_CONN];
    size_t n_conns;
    atomic_int stopping;
    atomic_uint_fast64_t sent;
};

struct conn {
    ss_server *s;
    int fd;
};

struct ss_route ss_route_file(const char *path, const void *body, size_t len)
{
    struct ss_route r;
    memset(&r, 0, sizeof(r));
    r.path = path;
    r.body = body;
    r.body_len = len;
    r.cut_at = -1;
    r.stall_at = -1;
    return r;
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Waits until the client closes (or sends something) or the server stops. */
static void wait_client_gone(ss_server *s, int fd)
{
    struct pollfd p[2] = {{fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
    while (poll(p, 2, -1) < 0 && errno == EINTR)
        ;
}

static void pause_ms(ss_server *s, unsigned ms)
{
    struct pollfd p = {s->stop_pipe[0], POLLIN, 0};
    poll(&p, 1, (int)ms);
}

static void header_copy(const char *hdrs, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *line = hdrs; line != NULL && *line != '\0';) {
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(eol - v);
            if (vl >= outsz)
                vl = outsz - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return;
        }
        line = eol + 2;
    }
}

static void serve(ss_server *s, int fd)
{
    char req[16384];
    size_t got = 0;
    char *end = NULL;
    while (got < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0)
            return;
        got += (size_t)n;
        req[got] = '\0';
        if ((end = strstr(req, "\r\n\r\n")) != NULL)
            break;
    }
    if (end == NULL)
        return;
    struct ss_request r;
    memset(&r, 0, sizeof(r));
    char *sp1 = strchr(req, ' ');
    char *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL)
        return;
    snprintf(r.method, sizeof(r.method), "%.*s", (int)(sp1 - req), req);
    snprintf(r.target, sizeof(r.target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    char *hdrs = strstr(req, "\r\n") + 2;
    end[2] = '\0';
    header_copy(hdrs, "Range", r.range, sizeof(r.range));
    header_copy(hdrs, "Authorization", r.auth, sizeof(r.auth));
    header_copy(hdrs, "Host", r.host, sizeof(r.host));

    struct ss_route rt;
    memset(&rt, 0, sizeof(rt));
    int found = 0, cut = 0, stall = 0;
    pthread_mutex_lock(&s->mu);
    if (s->n_log < SS_MAX_LOG)
        s->log[s->n_log] = r;
    s->n_log++;
    for (size_t i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, r.target) == 0) {
            rt = s->routes[i];
            found = 1;
            if (rt.cut_at >= 0 && s->cut_left[i] > 0) {
                s->cut_left[i]--;
                cut = 1;
            }
            if (rt.stall_at >= 0 && s->stall_left[i] > 0) {
                s->stall_left[i]--;
                stall = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);

    char head[4096];
    int hl;
    if (!found) {
        static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
                                 "Connection: close\r\n\r\nnot found";
        send_all(fd, nf, sizeof(nf) - 1);
        return;
    }
    const char *body = rt.body;
    uint64_t len = rt.body_len, from = 0, to = len; /* [from, to) */
    int status = rt.status != 0 ? rt.status : 200;
    char crange[128] = "";
    if (rt.status == 0 && r.range[0] != '\0' && !rt.ignore_range) {
        unsigned long long a = 0, b = 0;
        int n = sscanf(r.range, "bytes=%llu-%llu", &a, &b);
        if (n >= 1 && a >= len) {
            status = 416;
            snprintf(crange, sizeof(crange), "Content-Range: bytes */%llu\r\n",
                     (unsigned long long)len);
            from = to = 0;
        } else if (n >= 1) {
            status = 206;
            from = a;
            if (n == 2 && b + 1 < len)
                to = b + 1;
            snprintf(crange, sizeof(crange), "Content-Range: bytes %llu-%llu/%llu\r\n",
                     (unsigned long long)from, (unsigned long long)(to - 1),
                     (unsigned long long)len);
        }
    }
    const char *reason = status == 200       ? "OK"
                         : status == 206     ? "Partial Content"
                         : status == 416     ? "Range Not Satisfiable"
                         : status / 100 == 3 ? "Redirect"
                                             : "Status";
    hl = snprintf(head, sizeof(head),
                  "HTTP/1.1 %d %s\r\nContent-Length: %llu\r\n%s%s%s%s%sAccept-Ranges: "
                  "bytes\r\nConnection: close\r\n\r\n",
                  status, reason, (unsigned long long)(to - from), crange,
                  rt.location != NULL ? "Location: " : "", rt.location != NULL ? rt.location : "",
                  rt.location != NULL ? "\r\n" : "", rt.headers != NULL ? rt.headers : "");
    if (hl < 0 || (size_t)hl >= sizeof(head) || send_all(fd, head, (size_t)hl) < 0)
        return;
    if (strcmp(r.method, "HEAD") == 0)
        return;
    uint64_t stop_at = to;
    if (cut && (uint64_t)rt.cut_at < stop_at)
        stop_at = (uint64_t)rt.cut_at > from ? (uint64_t)rt.cut_at : from;
    if (stall && (uint64_t)rt.stall_at < stop_at)
        stop_at = (uint64_t)rt.stall_at > from ? (uint64_t)rt.stall_at : from;
    uint64_t off = from;
    while (off < stop_at && !atomic_load(&s->stopping)) {
        size_t piece = rt.trickle_bytes > 0 ? rt.trickle_bytes : (1u << 20);
        if (piece > stop_at - off)
            piece = (size_t)(stop_at - off);
        if (send_all(fd, body + off, piece) < 0)
            return;
        atomic_fetch_add(&s->sent, piece);
        off += piece;
        if (rt.trickle_bytes > 0 && off < stop_at)
            pause_ms(s, rt.trickle_ms);
    }
    if (stall && off < to)
        wait_client_gone(s, fd);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    serve(c->s, c->fd);
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    ss_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0 || atomic_load(&s->stopping))
            break;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct conn *c = malloc(sizeof(*c));
        if (c == NULL || s->n_conns >= SS_MAX_CONN) {
            free(c);
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (pthread_create(&s->conns[s->n_conns], NULL, conn_main, c) != 0) {
            free(c);
            close(fd);
            continue;
        }
        s->n_conns++;
    }
    return NULL;
}

ss_server *ss_start(void)
{
    ss_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0)
        goto fail_free;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto fail_pipe;
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->lfd, 64) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) != 0)
        goto fail_sock;
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->acceptor, NULL, accept_main, s) != 0)
        goto fail_sock;
    return s;
fail_sock:
    close(s->lfd);
fail_pipe:
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
fail_free:
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

int ss_port(const ss_server *s)
{
    return s->port;
}

void ss_route_add(ss_server *s, const struct ss_route *r)
{
    pthread_mutex_lock(&s->mu);
    size_t i = 0;
    while (i < s->n_routes && strcmp(s->routes[i].path, r->path) != 0)
        i++;
    if (i < SS_MAX_ROUTES) {
        s->routes[i] = *r;
        s->cut_left[i] = r->cut_times;
        s->stall_left[i] = r->stall_times;
        if (i == s->n_routes)
            s->n_routes++;
    }
    pthread_mutex_unlock(&s->mu);
}

size_t ss_log(ss_server *s, struct ss_request *out, size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_log;
    for (size_t i = 0; i < n && i < max && i < SS_MAX_LOG; i++)
        out[i] = s->log[i];
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t ss_count(ss_server *s, const char *target)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_log && i < SS_MAX_LOG; i++)
        n += strcmp(s->log[i].target, target) == 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ss_log_clear(ss_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->n_log = 0;
    pthread_mutex_unlock(&s->mu);
}

uint64_t ss_bytes_sent(ss_server *s)
{
    return atomic_load(&s->sent);
}

void ss_stop(ss_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, 1);
    ssize_t w;
    do {
        w = write(s->stop_pipe[1], "x", 1);
    } while (w < 0 && errno == EINTR);
    pthread_join(s->acceptor, NULL);
    for (size_t i = 0; i < s->n_conns; i++)
        pthread_join(s->conns[i], NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
