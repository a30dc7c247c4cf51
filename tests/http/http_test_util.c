/*
 * http_test_util.c - see http_test_util.h.
 */
#include "http_test_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    sbuf_append(arg, p, size * n);
    return size * n;
}

typedef struct upload {
    const char *data;
    size_t len, off;
} upload;

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    upload *u = arg;
    size_t want = size * n, left = u->len - u->off;
    size_t k = want < left ? want : left;
    memcpy(buf, u->data + u->off, k);
    u->off += k;
    return k;
}

/* Test clients' sockets are close-on-exec too, so fd checks see only the
 * server's fds as the thing under test. */
static curl_socket_t open_cloexec(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int treq(const char *method, const char *url, const char *const *headers, const char *body,
         size_t len, int chunked, tresp *out)
{
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    if (c == NULL)
        return -1;
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    upload u = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &u);
        if (chunked)
            hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        else
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    out->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return 0;
}

void tresp_free(tresp *r)
{
    sbuf_free(&r->headers);
    sbuf_free(&r->body);
}

const char *tresp_header(const tresp *r, const char *name, char *buf, size_t n)
{
    const char *p = sbuf_str(&r->headers);
    size_t nl = strlen(name);
    while (*p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = len - (size_t)(v - p);
            snprintf(buf, n, "%.*s", (int)vl, v);
            return buf;
        }
        p += len + (eol ? 2 : 0);
    }
    return NULL;
}

int t_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

#define FD_TRACK 4096
static unsigned char g_inherited[FD_TRACK];

void t_cloexec_baseline(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = (int)strtol(e->d_name, NULL, 10);
        int fl = fcntl(fd, F_GETFD);
        if (e->d_name[0] != '.' && fd < FD_TRACK && fl >= 0 && !(fl & FD_CLOEXEC))
            g_inherited[fd] = 1;
    }
    closedir(d);
}

int t_all_cloexec(void)
{
    DIR *d = opendir("/proc/self/fd");
    int ok = 1, self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = (int)strtol(e->d_name, NULL, 10);
        if (fd <= 2 || fd == self || (fd < FD_TRACK && g_inherited[fd]))
            continue;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) {
            char link[64], target[256] = "";
            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
            ssize_t k = readlink(link, target, sizeof(target) - 1);
            if (k > 0)
                target[k] = '\0';
            fprintf(stderr, "fd %d (%s) is not close-on-exec\n", fd, target);
            ok = 0;
        }
    }
    closedir(d);
    return ok;
}

uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int t_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
