/*
 * child.c - the test double for supervised processes (proc_child).
 *
 * Each switch is one behaviour, and switches run in order, so a test writes a
 * small script on the command line:
 *   --out TEXT / --err TEXT   write TEXT to stdout / stderr (C escapes \n \r
 *                             \e \t \\ are decoded; no newline is added)
 *   --big N                   write N bytes ('x', a newline every 100) to stdout
 *   --sleep-ms N              sleep N ms (the double may sleep; tests may not)
 *   --exit N                  exit with status N
 *   --signal N                die by signal N (default disposition)
 *   --ignore-term first|all   ignore the first SIGTERM, or every SIGTERM
 *   --fds                     print "fds: 0 1 2 ..." (this process's open fds)
 *   --ppid                    print "ppid: N"
 *   --pid-file PATH           write our pid to PATH
 *   --stamp PATH              with --serve: write CLOCK_MONOTONIC ns to PATH
 *                             once /health answers 200
 *   --key KEY                 with --serve: require "Authorization: Bearer KEY"
 *   --ready-after-ms N        with --serve: answer 503 for N ms, then 200
 *   --serve-for-ms N          with --serve: stop serving after N ms, close the
 *                             socket and go on with the next switches
 *   --serve PORT              serve GET /health on 127.0.0.1:PORT (forever
 *                             unless --serve-for-ms), as llama-server does
 *                             (contracts/llama-server.md §4)
 *   --hang                    wait forever
 * With no --exit/--hang/--serve at the end, it exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *g_key;
static long g_ready_after_ms;
static long g_serve_for_ms;
static const char *g_stamp;
static volatile sig_atomic_t g_terms;

static long parse_long(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, "child: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            exit(3);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void write_decoded(int fd, const char *s)
{
    char buf[4096];
    size_t n = 0;
    for (; *s != '\0' && n < sizeof(buf); s++) {
        if (*s == '\\' && s[1] != '\0') {
            s++;
            switch (*s) {
            case 'n':
                buf[n++] = '\n';
                break;
            case 'r':
                buf[n++] = '\r';
                break;
            case 't':
                buf[n++] = '\t';
                break;
            case 'e':
                buf[n++] = '\033';
                break;
            default:
                buf[n++] = *s;
                break;
            }
        } else {
            buf[n++] = *s;
        }
    }
    write_all(fd, buf, n);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_term(int sig)
{
    (void)sig;
    g_terms++;
    if (g_terms > 1)
        _exit(1); /* like llama-server's "terminating immediately" */
}

static void print_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        exit(4);
    char line[1024] = "fds:";
    size_t n = strlen(line);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        long fd = parse_long(e->d_name);
        if (fd == dirfd(d))
            continue;
        int w = snprintf(line + n, sizeof(line) - n, " %ld", fd);
        if (w > 0 && (size_t)w < sizeof(line) - n)
            n += (size_t)w;
    }
    closedir(d);
    line[n++] = '\n';
    write_all(1, line, n);
}

static void respond(int c, int code, const char *reason, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     code, reason, strlen(body));
    write_all(c, head, (size_t)n);
    write_all(c, body, strlen(body));
}

static void serve(long port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 16) != 0) {
        /* the llama-server signature (contracts/llama-server.md §9) */
        fprintf(stderr,
                "E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, "
                "port: %ld\nE srv  llama_server: exiting due to HTTP server error\n",
                port);
        exit(1);
    }
    int64_t ready_at = mono_ns() + (int64_t)g_ready_after_ms * 1000000;
    int64_t stop_at = g_serve_for_ms > 0 ? mono_ns() + (int64_t)g_serve_for_ms * 1000000 : 0;
    int stamped = 0;
    for (;;) {
        if (!stamped && g_stamp != NULL && mono_ns() >= ready_at) {
            FILE *f = fopen(g_stamp, "we");
            if (f != NULL) {
                fprintf(f, "%lld\n", (long long)mono_ns());
                fclose(f);
            }
            stamped = 1;
        }
        if (stop_at != 0) {
            int64_t left_ms = (stop_at - mono_ns()) / 1000000;
            struct pollfd p = {.fd = s, .events = POLLIN};
            if (left_ms <= 0 || poll(&p, 1, (int)left_ms) == 0) {
                close(s);
                return;
            }
        }
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            exit(5);
        }
        char req[4096];
        size_t len = 0;
        while (len < sizeof(req) - 1) {
            ssize_t r = read(c, req + len, sizeof(req) - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
            req[len] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[len] = '\0';
        if (mono_ns() < ready_at) {
            respond(c, 503, "Service Unavailable",
                    "{\"error\":{\"message\":\"Loading model\",\"type\":\"unavailable_error\","
                    "\"code\":503}}");
        } else if (strncmp(req, "GET /health ", 12) != 0) {
            respond(c, 404, "Not Found", "{\"error\":\"not found\"}");
        } else if (g_key != NULL) {
            char want[512];
            snprintf(want, sizeof(want), "Authorization: Bearer %s\r\n", g_key);
            if (strstr(req, want) == NULL)
                respond(c, 401, "Unauthorized", "{\"error\":\"Invalid API Key\"}");
            else
                respond(c, 200, "OK", "{\"status\":\"ok\"}");
        } else {
            respond(c, 200, "OK", "{\"status\":\"ok\"}");
        }
        close(c);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--fds") == 0) {
            print_fds();
            continue;
        }
        if (strcmp(a, "--ppid") == 0) {
            char line[64];
            int n = snprintf(line, sizeof(line), "ppid: %ld\n", (long)getppid());
            write_all(1, line, (size_t)n);
            continue;
        }
        if (strcmp(a, "--hang") == 0) {
            for (;;)
                pause();
        }
        if (v == NULL) {
            fprintf(stderr, "child: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--out") == 0) {
            write_decoded(1, v);
        } else if (strcmp(a, "--err") == 0) {
            write_decoded(2, v);
        } else if (strcmp(a, "--big") == 0) {
            long n = parse_long(v);
            char chunk[4096];
            for (size_t k = 0; k < sizeof(chunk); k++)
                chunk[k] = k % 100 == 99 ? '\n' : 'x';
            while (n > 0) {
                size_t w = n > (long)sizeof(chunk) ? sizeof(chunk) : (size_t)n;
                write_all(1, chunk, w);
                n -= (long)w;
            }
        } else if (strcmp(a, "--sleep-ms") == 0) {
            long ms = parse_long(v);
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        } else if (strcmp(a, "--exit") == 0) {
            return (int)parse_long(v);
        } else if (strcmp(a, "--signal") == 0) {
            int sig = (int)parse_long(v);
            signal(sig, SIG_DFL);
            raise(sig);
            return 99;
        } else if (strcmp(a, "--ignore-term") == 0) {
            if (strcmp(v, "all") == 0) {
                signal(SIGTERM, SIG_IGN);
            } else {
                struct sigaction sa = {.sa_handler = on_term};
                sigaction(SIGTERM, &sa, NULL);
            }
        } else if (strcmp(a, "--pid-file") == 0) {
            FILE *f = fopen(v, "we");
            if (f == NULL)
                return 6;
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        } else if (strcmp(a, "--stamp") == 0) {
            g_stamp = v;
        } else if (strcmp(a, "--key") == 0) {
            g_key = v;
        } else if (strcmp(a, "--ready-after-ms") == 0) {
            g_ready_after_ms = parse_long(v);
        } else if (strcmp(a, "--serve-for-ms") == 0) {
            g_serve_for_ms = parse_long(v);
        } else if (strcmp(a, "--serve") == 0) {
            serve(parse_long(v));
        } else {
            fprintf(stderr, "child: unknown switch %s\n", a);
            return 2;
        }
    }
    return 0;
}
