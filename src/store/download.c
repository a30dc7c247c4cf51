/*
 * download.c - resumable, verified downloads with libcurl (see download.h).
 *
 * One attempt is one curl_easy_perform on a fresh handle:
 *   1. the partial file is open O_RDWR; `offset` bytes of it are on disk and
 *      published to the hasher (hasher.h), which hashes them from the file
 *      on a thread of its own, a resumed prefix included;
 *   2. with offset > 0 the request carries "Range: bytes=<offset>-";
 *   3. the first body byte decides what the answer means: 206 must start at
 *      offset (Content-Range), 200 means the server ignored Range, so the
 *      file is truncated and the hash restarted; any other status is an error
 *      page whose body is dropped;
 *   4. bytes are written with pwrite at offset, then published to the
 *      hasher, so the hash covers exactly the bytes on disk, in order.
 * The attempt loop classifies the outcome as done, transient (retry after a
 * backoff from the current offset) or permanent. Consecutive attempts that
 * add no byte count against max_attempts; an attempt that made progress
 * resets the count (a connection cut every few MB still finishes).
 */
#include "store/download.h"

#include "core/alloc.h"
#include "core/log.h"
#include "core/sbuf.h"
#include "store/hasher.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MOD "store"
#define BACKOFF_MAX_MS 30000u
#define PROGRESS_INTERVAL_NS (100 * 1000 * 1000LL)
#ifndef STORE_RECV_BUFFER /* curl's receive buffer; see docs/store.md */
#define STORE_RECV_BUFFER (512L * 1024L)
#endif
#define ATTEMPTS_HARD_CAP 1000u /* even with progress, give up eventually */

const char *store_phase_name(store_phase phase)
{
    switch (phase) {
    case STORE_PHASE_RESOLVING:
        return "resolving";
    case STORE_PHASE_WAITING:
        return "waiting";
    case STORE_PHASE_DOWNLOADING:
        return "downloading";
    case STORE_PHASE_RETRYING:
        return "retrying";
    case STORE_PHASE_VERIFYING:
        return "verifying";
    case STORE_PHASE_DONE:
        return "done";
    }
    return "unknown";
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int curl_ready(genai_error *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return err_set(err, GENAI_EINTERNAL, "curl_global_init failed: %s",
                       curl_easy_strerror(curl_init_rc));
    return 0;
}

void store_net_defaults(store_net *n)
{
    memset(n, 0, sizeof(*n));
    const char *ep = getenv("GENAI_HF_ENDPOINT");
    n->hf_endpoint = (ep != NULL && ep[0] != '\0') ? ep : "https://huggingface.co";
    const char *tok = getenv("HF_TOKEN");
    n->hf_token = (tok != NULL && tok[0] != '\0') ? tok : NULL;
    n->max_redirects = 10;
    n->stall_seconds = 30;
    n->connect_timeout_s = 30;
    n->max_attempts = 6;
    n->backoff_ms = 1000;
}

/* Host part of url (lowercase as curl gives it) into out; 0 or -1. */
static int url_host(const char *url, char *out, size_t outsz, char *scheme, size_t schemesz)
{
    CURLU *u = curl_url();
    char *host = NULL, *sch = NULL;
    int rc = -1;
    if (u == NULL)
        return -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK)
        goto out;
    if ((size_t)snprintf(out, outsz, "%s", host) >= outsz ||
        (size_t)snprintf(scheme, schemesz, "%s", sch) >= schemesz)
        goto out;
    rc = 0;
out:
    curl_free(host);
    curl_free(sch);
    curl_url_cleanup(u);
    return rc;
}

int store_net_token_allowed(const store_net *n, const char *url)
{
    char host[256], scheme[16], ep_host[256], ep_scheme[16];
    if (n->hf_token == NULL || url_host(url, host, sizeof(host), scheme, sizeof(scheme)) < 0)
        return 0;
    if (n->hf_endpoint != NULL &&
        url_host(n->hf_endpoint, ep_host, sizeof(ep_host), ep_scheme, sizeof(ep_scheme)) == 0 &&
        strcasecmp(host, ep_host) == 0 && strcasecmp(scheme, ep_scheme) == 0)
        return 1;
    if (strcasecmp(scheme, "https") != 0)
        return 0;
    size_t hl = strlen(host);
    static const char suffix[] = ".huggingface.co";
    return strcasecmp(host, "huggingface.co") == 0 ||
           (hl > sizeof(suffix) - 1 && strcasecmp(host + hl - (sizeof(suffix) - 1), suffix) == 0);
}

/* curl 7.88 creates sockets without SOCK_CLOEXEC; make them close-on-exec
 * from birth so no child process inherits one. */
static curl_socket_t open_socket_cloexec(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *addr)
{
    (void)clientp;
    (void)purpose;
    int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int store_url_scheme_allowed(const store_net *net, const char *url, genai_error *err)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return 0;
    if (strncasecmp(url, "http://", 7) == 0) {
        if (net->allow_http)
            return 0;
        return err_set(err, GENAI_EHTTP,
                       "refusing plain http for %s (allow it explicitly, e.g. --allow-http)", url);
    }
    return err_set(err, GENAI_EBAD_ARG, "not an http(s) URL: %s", url);
}

/* Common easy-handle settings. *hdrs receives the header list to free. */
static int setup_easy(CURL *c, const store_net *net, const char *url, const char *range,
                      struct curl_slist **hdrs, genai_error *err)
{
    const char *protos = net->allow_http ? "http,https" : "https";
    struct curl_slist *h = NULL;
    char line[4200];
    if (store_net_token_allowed(net, url)) {
        if ((size_t)snprintf(line, sizeof(line), "Authorization: Bearer %s", net->hf_token) >=
            sizeof(line))
            return err_set(err, GENAI_ETOO_LARGE, "HF_TOKEN is too long");
        if ((h = curl_slist_append(h, line)) == NULL)
            return err_set(err, -ENOMEM, "out of memory");
    }
    if (range != NULL) {
        snprintf(line, sizeof(line), "Range: %s", range);
        struct curl_slist *t = curl_slist_append(h, line);
        if (t == NULL) {
            curl_slist_free_all(h);
            return err_set(err, -ENOMEM, "out of memory");
        }
        h = t;
    }
    char ua[64];
    snprintf(ua, sizeof(ua), "genai/%s", genai_version()); /* curl copies it */
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, net->max_redirects);
    SET(CURLOPT_PROTOCOLS_STR, protos);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, protos);
    SET(CURLOPT_USERAGENT, ua);
    SET(CURLOPT_CONNECTTIMEOUT, net->connect_timeout_s);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cloexec);
    SET(CURLOPT_HTTPHEADER, h);
    SET(CURLOPT_BUFFERSIZE, (long)STORE_RECV_BUFFER);
#undef SET
    if (cc != CURLE_OK) {
        curl_slist_free_all(h);
        return err_set(err, GENAI_EINTERNAL, "curl setup: %s", curl_easy_strerror(cc));
    }
    *hdrs = h;
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleeps ms milliseconds in 50 ms slices, returning early with
 * GENAI_ECANCELLED when the cancel flag is raised. */
static int backoff_wait(const store_net *net, unsigned ms)
{
    int64_t end = now_ns() + (int64_t)ms * 1000000LL;
    for (;;) {
        if (net->cancel != NULL && atomic_load(net->cancel))
            return GENAI_ECANCELLED;
        int64_t left = end - now_ns();
        if (left <= 0)
            return 0;
        if (left > 50000000LL)
            left = 50000000LL;
        struct timespec ts = {0, (long)left};
        nanosleep(&ts, NULL);
    }
}

static int is_transient_status(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

static int is_transient_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* ---- one transfer into the partial file ---- */

struct xfer {
    const store_net *net;
    const store_fetch *f;
    CURL *curl;
    int fd;
    uint64_t offset; /* bytes on disk == bytes published to the hasher */
    store_hasher *hasher;
    genai_error hash_error; /* why hashing failed, with hash_failed */
    unsigned attempt;
    int decided;      /* the first body byte has been seen */
    int error_page;   /* status is not 200/206: body dropped */
    int write_errno;  /* errno of a failed write */
    int range_broken; /* 206 did not start at offset */
    int hash_failed;
    int stalled;         /* no byte for stall_seconds */
    uint64_t stall_mark; /* offset at the last progress */
    int64_t stall_since; /* when offset last moved */
    long status;         /* status of the current response (last hop) */
    int64_t cr_start;    /* Content-Range: first byte, -1 when absent */
    int64_t cr_total;    /* Content-Range: total, -1 when absent or "*" */
    char linked_etag[STORE_SHA256_HEX];
    char repo_commit[41];
    int64_t last_report;
};

static void report(const struct xfer *x, store_phase phase, const char *reason)
{
    if (x->net->progress == NULL)
        return;
    store_progress p = {
        .phase = phase,
        .name = x->f->name != NULL ? x->f->name : x->f->dest,
        .done = x->offset,
        .total = x->f->expected_size,
        .attempt = x->attempt,
        .file_index = x->f->file_index,
        .file_count = x->f->file_count,
        .reason = reason,
    };
    x->net->progress(&p, x->net->userdata);
}

/* Copies the value of header line "Name: value\r\n" when it is name. */
static int header_value(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return 0;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    if (vl >= outsz)
        vl = outsz - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
    return 1;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nitems;
    char v[256];
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new response (first or after a redirect or 100-continue). */
        const char *sp = memchr(buf, ' ', len);
        x->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        x->cr_start = -1;
        x->cr_total = -1;
        return len;
    }
    if (header_value(buf, len, "Content-Range", v, sizeof(v))) {
        /* "bytes 100-999/1000", or "bytes *\/1000" on a 416 (RFC 9110 §14.4) */
        unsigned long long a, b, t;
        if (sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
            x->cr_start = (int64_t)a;
            x->cr_total = (int64_t)t;
        } else if (sscanf(v, "bytes */%llu", &t) == 1) {
            x->cr_total = (int64_t)t;
        }
    } else if (header_value(buf, len, "X-Linked-Etag", v, sizeof(v))) {
        /* LFS files: the quoted SHA-256 of the content. */
        const char *s = v[0] == '"' ? v + 1 : v;
        char tmp[STORE_SHA256_HEX];
        if (strlen(s) >= 64) {
            memcpy(tmp, s, 64);
            tmp[64] = '\0';
            if (store_sha256_normalize(tmp, x->linked_etag) < 0)
                x->linked_etag[0] = '\0';
        }
    } else if (header_value(buf, len, "X-Repo-Commit", v, sizeof(v))) {
        size_t n = strlen(v);
        if (n < sizeof(x->repo_commit)) /* a 40-digit commit id; ignore anything else */
            memcpy(x->repo_commit, v, n + 1);
    }
    return len;
}

/* Empties the partial file and starts the hash over. The hasher is stopped
 * first: it must not be reading a range of the file being cut. */
static int start_over(struct xfer *x)
{
    if (store_hasher_restart(x->hasher, &x->hash_error) < 0) {
        x->hash_failed = 1;
        return -1;
    }
    if (ftruncate(x->fd, 0) != 0) {
        x->write_errno = errno;
        return -1;
    }
    x->offset = 0;
    return 0;
}

/* The error of a failed start_over, for run_attempt's code. */
static int start_over_error(struct xfer *x, genai_error *err)
{
    if (x->write_errno != 0)
        return err_errno(err, x->write_errno, "truncating %s.partial", x->f->dest);
    if (err != NULL)
        *err = x->hash_error;
    return x->hash_error.code < 0 ? x->hash_error.code : GENAI_EINTERNAL;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nitems;
    if (!x->decided) {
        x->decided = 1;
        if (x->status == 206) {
            if (x->cr_start != (int64_t)x->offset) {
                x->range_broken = 1;
                return 0;
            }
        } else if (x->status == 200) {
            if (x->offset > 0) {
                LOG_INFO(MOD, "%s: server ignored Range, starting over", x->f->url);
                if (start_over(x) < 0)
                    return 0;
            }
        } else {
            x->error_page = 1;
        }
    }
    if (x->error_page)
        return len; /* drop error pages; the status says enough */
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(x->fd, buf + done, len - done, (off_t)(x->offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            x->write_errno = errno;
            break;
        }
        done += (size_t)n;
    }
    if (done > 0 && store_hasher_wrote(x->hasher, buf, done, &x->hash_error) < 0) {
        x->hash_failed = 1;
        return 0;
    }
    x->offset += done;
    return done; /* short count makes curl fail with CURLE_WRITE_ERROR */
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct xfer *x = ud;
    if (x->net->cancel != NULL && atomic_load(x->net->cancel))
        return 1; /* CURLE_ABORTED_BY_CALLBACK */
    int64_t t = now_ns();
    /* Stall detection of our own: curl's LOW_SPEED_* averages over a window
     * of several seconds, so a stall after a burst went unnoticed for that
     * long. curl calls this at least once a second while idle. */
    if (x->offset != x->stall_mark) {
        x->stall_mark = x->offset;
        x->stall_since = t;
    } else if (t - x->stall_since >= (int64_t)x->net->stall_seconds * 1000000000LL) {
        x->stalled = 1;
        return 1;
    }
    if (t - x->last_report >= PROGRESS_INTERVAL_NS) {
        x->last_report = t;
        report(x, STORE_PHASE_DOWNLOADING, NULL);
    }
    return 0;
}

enum outcome { OUT_DONE, OUT_RETRY, OUT_FAIL };

/* Runs one transfer; classifies it. *err gets detail for RETRY and FAIL. */
static enum outcome run_attempt(struct xfer *x, int *code, genai_error *err)
{
    const store_fetch *f = x->f;
    char range[64];
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    enum outcome res = OUT_FAIL;
    if (c == NULL) {
        *code = err_set(err, -ENOMEM, "curl_easy_init failed");
        return OUT_FAIL;
    }
    x->curl = c;
    x->decided = x->error_page = x->write_errno = x->range_broken = x->hash_failed = 0;
    x->status = 0;
    x->stalled = 0;
    x->stall_mark = x->offset;
    x->stall_since = now_ns();
    x->cr_start = x->cr_total = -1;
    snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", x->offset);
    if ((*code = setup_easy(c, x->net, f->url, x->offset > 0 ? range : NULL, &hdrs, err)) < 0)
        goto out;
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);

    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);

    if (x->write_errno != 0) {
        if (x->write_errno == ENOSPC)
            *code = err_set(err, -ENOSPC,
                            "disk full writing %s.partial after %" PRIu64
                            " bytes; the partial file is kept, free space and pull again to "
                            "resume",
                            f->dest, x->offset);
        else
            *code = err_errno(err, x->write_errno, "writing %s.partial", f->dest);
        goto out;
    }
    if (x->hash_failed) {
        *code = x->hash_error.code < 0 ? x->hash_error.code : GENAI_EINTERNAL;
        if (err != NULL)
            *err = x->hash_error;
        err_prefix(err, "hashing %s.partial", f->dest);
        goto out;
    }
    if (cc == CURLE_ABORTED_BY_CALLBACK && x->stalled) {
        *code = err_set(err, GENAI_EUNAVAILABLE, "no data for %ld s (stalled) at %" PRIu64 " bytes",
                        x->net->stall_seconds, x->offset);
        res = OUT_RETRY;
        goto out;
    }
    if (cc == CURLE_ABORTED_BY_CALLBACK) {
        *code = err_set(err, GENAI_ECANCELLED,
                        "cancelled at %" PRIu64 " bytes; the partial file is kept for resume",
                        x->offset);
        goto out;
    }
    if (x->range_broken) {
        /* The 206 does not continue our bytes: start over next attempt. */
        LOG_WARN(MOD, "%s: 206 starts at %" PRId64 ", wanted %" PRIu64 "; starting over", f->url,
                 x->cr_start, x->offset);
        if (start_over(x) < 0) {
            *code = start_over_error(x, err);
            goto out;
        }
        *code = err_set(err, GENAI_EHTTP, "server sent a range that does not continue the file");
        res = OUT_RETRY;
        goto out;
    }
    if (cc == CURLE_TOO_MANY_REDIRECTS) {
        *code = err_set(err, GENAI_EHTTP, "more than %ld redirects fetching %s",
                        x->net->max_redirects, f->url);
        goto out;
    }
    if (cc == CURLE_UNSUPPORTED_PROTOCOL) {
        *code = err_set(err, GENAI_EHTTP,
                        "redirected to a refused scheme fetching %s (plain http needs "
                        "--allow-http)",
                        f->url);
        goto out;
    }
    if (cc != CURLE_OK) {
        *code = err_set(err, GENAI_EUNAVAILABLE, "%s at %" PRIu64 " bytes", curl_easy_strerror(cc),
                        x->offset);
        res = is_transient_curl(cc) ? OUT_RETRY : OUT_FAIL;
        goto out;
    }
    if (status == 416) {
        /* Range not satisfiable: complete if the server's size is ours. */
        uint64_t total = x->cr_total >= 0 ? (uint64_t)x->cr_total : f->expected_size;
        if (x->offset > 0 && total == x->offset) {
            res = OUT_DONE;
            goto out;
        }
        LOG_WARN(MOD, "%s: 416 for a partial of %" PRIu64 " bytes; starting over", f->url,
                 x->offset);
        if (start_over(x) < 0) {
            *code = start_over_error(x, err);
            goto out;
        }
        *code = err_set(err, GENAI_EHTTP, "HTTP 416 for a partial file that does not match");
        res = OUT_RETRY;
        goto out;
    }
    if (status != 200 && status != 206) {
        if (status == 404)
            *code = err_set(err, GENAI_ENOT_FOUND, "HTTP 404 for %s", f->url);
        else if (status == 401 || status == 403)
            *code = err_set(err, GENAI_EHTTP, "HTTP %ld for %s (%s)", status, f->url,
                            x->net->hf_token != NULL ? "is HF_TOKEN allowed to read it?"
                                                     : "gated or private? set HF_TOKEN");
        else
            *code = err_set(err, GENAI_EHTTP, "HTTP %ld for %s", status, f->url);
        res = is_transient_status(status) ? OUT_RETRY : OUT_FAIL;
        goto out;
    }
    if (!x->decided && status == 200 && x->offset > 0) {
        /* An empty 200 to a Range request: the file is empty. */
        if (start_over(x) < 0) {
            *code = start_over_error(x, err);
            goto out;
        }
    }
    if (f->expected_size > 0 && x->offset < f->expected_size) {
        *code = err_set(err, GENAI_EUNAVAILABLE, "body ended at %" PRIu64 " of %" PRIu64 " bytes",
                        x->offset, f->expected_size);
        res = OUT_RETRY;
        goto out;
    }
    res = OUT_DONE;
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    x->curl = NULL;
    return res;
}

static int check_space(const store_fetch *f, uint64_t have, genai_error *err)
{
    if (f->expected_size == 0 || have >= f->expected_size)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", f->dest);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return err_errno(err, errno, "statvfs %s", dir);
    uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    uint64_t need = f->expected_size - have;
    if (avail < need)
        return err_set(err, -ENOSPC,
                       "not enough space for %s: need %" PRIu64 " more bytes, %" PRIu64
                       " free in %s",
                       f->name != NULL ? f->name : f->dest, need, avail, dir);
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int rc = fsync(dfd) == 0 ? 0 : -errno;
    close(dfd);
    return rc;
}

int store_download(const store_net *net, const store_fetch *f, store_fetch_result *out,
                   genai_error *err)
{
    char partial[4200];
    store_sha256 hash = {0};
    struct stat st;
    int rc;
    if ((rc = curl_ready(err)) < 0 || (rc = store_url_scheme_allowed(net, f->url, err)) < 0)
        return rc;
    if ((size_t)snprintf(partial, sizeof(partial), "%s.partial", f->dest) >= sizeof(partial))
        return err_set(err, -ENAMETOOLONG, "path too long: %s", f->dest);
    char expected[STORE_SHA256_HEX] = "";
    if (f->expected_sha256 != NULL && store_sha256_normalize(f->expected_sha256, expected) < 0)
        return err_set(err, GENAI_EBAD_ARG, "not a SHA-256 digest: '%s'", f->expected_sha256);

    int fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno(err, errno, "cannot open %s", partial);
    if ((rc = store_sha256_init(&hash)) < 0) {
        err_set(err, rc, "cannot start SHA-256");
        goto close_fd;
    }
    store_hasher *hasher = NULL;
    struct xfer x = {.net = net, .f = f, .fd = fd, .attempt = 1};
    if (fstat(fd, &st) != 0) {
        rc = err_errno(err, errno, "fstat %s", partial);
        goto free_hash;
    }
    uint64_t have = (uint64_t)st.st_size;
    if (f->expected_size > 0 && have > f->expected_size) {
        LOG_WARN(MOD, "%s is longer than the file; starting over", partial);
        if (ftruncate(fd, 0) != 0) {
            rc = err_errno(err, errno, "truncating %s", partial);
            goto free_hash;
        }
        have = 0;
    }
    if ((rc = check_space(f, have, err)) < 0)
        goto free_hash;
    int resumed = have > 0;
    /* The prefix already on disk is re-hashed by the hasher's thread while
     * the rest downloads. */
    if ((rc = store_hasher_start(&hasher, &hash, fd, have, err)) < 0) {
        err_prefix(err, "re-hashing %s", partial);
        goto free_hash;
    }
    x.hasher = hasher;
    x.offset = have;
    if (have > 0)
        LOG_INFO(MOD, "resuming %s at %" PRIu64 " bytes", f->url, have);

    unsigned fails = 0, requests = 0;
    unsigned backoff = net->backoff_ms;
    for (;;) {
        uint64_t before = x.offset;
        int code = 0;
        genai_error e;
        genai_error_clear(&e);
        requests++;
        report(&x, STORE_PHASE_DOWNLOADING, NULL);
        enum outcome o = run_attempt(&x, &code, &e);
        if (o == OUT_DONE)
            break;
        if (o == OUT_FAIL) {
            rc = code;
            if (err != NULL)
                *err = e;
            goto free_hash;
        }
        if (x.offset > before) {
            fails = 0;
            backoff = net->backoff_ms;
        }
        fails++;
        if (fails >= net->max_attempts || requests >= ATTEMPTS_HARD_CAP) {
            rc = err_set(err, GENAI_EUNAVAILABLE,
                         "giving up on %s after %u attempts: %s; the partial file is kept "
                         "(%" PRIu64 " bytes)",
                         f->url, requests, e.detail, x.offset);
            goto free_hash;
        }
        LOG_INFO(MOD, "%s: %s; retrying in %u ms", f->url, e.detail, backoff);
        x.attempt++;
        report(&x, STORE_PHASE_RETRYING, e.detail);
        if (backoff_wait(net, backoff) < 0) {
            rc = err_set(err, GENAI_ECANCELLED,
                         "cancelled at %" PRIu64 " bytes; the partial file is kept for resume",
                         x.offset);
            goto free_hash;
        }
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }

    report(&x, STORE_PHASE_VERIFYING, NULL);
    char got[STORE_SHA256_HEX];
    if ((rc = store_hasher_drain(hasher, err)) < 0) {
        err_prefix(err, "hashing %s", partial);
        goto free_hash;
    }
    if ((rc = store_sha256_final(&hash, got)) < 0) {
        err_set(err, rc, "SHA-256 failed");
        goto free_hash;
    }
    if (expected[0] == '\0' && x.linked_etag[0] != '\0')
        memcpy(expected, x.linked_etag, sizeof(expected));
    if ((f->expected_size > 0 && x.offset != f->expected_size) ||
        (expected[0] != '\0' && strcmp(expected, got) != 0)) {
        if (f->expected_size > 0 && x.offset != f->expected_size)
            rc = err_set(err, GENAI_ECHECKSUM, "%s: got %" PRIu64 " bytes, expected %" PRIu64,
                         f->url, x.offset, f->expected_size);
        else
            rc = err_set(err, GENAI_ECHECKSUM,
                         "%s: SHA-256 is %s, expected %s; the download is discarded", f->url, got,
                         expected);
        close(fd);
        fd = -1;
        if (unlink(partial) != 0 && errno != ENOENT)
            LOG_WARN(MOD, "cannot remove %s: %s", partial, strerror(errno));
        goto free_hash;
    }
    if (fsync(fd) != 0) {
        rc = err_errno(err, errno, "fsync %s", partial);
        goto free_hash;
    }
    close(fd);
    fd = -1;
    if (rename(partial, f->dest) != 0) {
        rc = err_errno(err, errno, "rename %s to %s", partial, f->dest);
        goto free_hash;
    }
    if ((rc = fsync_dir_of(f->dest)) < 0) {
        err_errno(err, -rc, "fsync the folder of %s", f->dest);
        goto free_hash;
    }
    report(&x, STORE_PHASE_DONE, NULL);
    memcpy(out->sha256, got, sizeof(got));
    out->size = x.offset;
    snprintf(out->repo_commit, sizeof(out->repo_commit), "%s", x.repo_commit);
    out->resumed = resumed;
    out->requests = requests;
    rc = 0;
free_hash:
    store_hasher_stop(hasher);
    store_sha256_free(&hash);
close_fd:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- small documents ---- */

struct membuf {
    sbuf b;
    size_t max;
    int too_large;
    long status;
    char next[2048];
};

static size_t mem_on_body(char *buf, size_t size, size_t nitems, void *ud)
{
    struct membuf *m = ud;
    size_t len = size * nitems;
    if (m->b.len + len > m->max) {
        m->too_large = 1;
        return 0;
    }
    if (sbuf_append(&m->b, buf, len) < 0)
        return 0;
    return len;
}

/* Link: <https://...>; rel="next" (RFC 8288), as the Hub paginates trees. */
static size_t mem_on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct membuf *m = ud;
    size_t len = size * nitems;
    char v[2048];
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        m->next[0] = '\0';
        return len;
    }
    if (header_value(buf, len, "Link", v, sizeof(v)) && strstr(v, "rel=\"next\"") != NULL) {
        char *lt = strchr(v, '<');
        char *gt = lt != NULL ? strchr(lt, '>') : NULL;
        if (lt != NULL && gt != NULL && (size_t)(gt - lt - 1) < sizeof(m->next)) {
            memcpy(m->next, lt + 1, (size_t)(gt - lt - 1));
            m->next[gt - lt - 1] = '\0';
        }
    }
    return len;
}

int store_http_get(const store_net *net, const char *url, size_t max_bytes, char **body,
                   size_t *len, char **next_link, genai_error *err)
{
    int rc;
    if ((rc = curl_ready(err)) < 0 || (rc = store_url_scheme_allowed(net, url, err)) < 0)
        return rc;
    unsigned backoff = net->backoff_ms;
    for (unsigned attempt = 1;; attempt++) {
        struct membuf m = {.b = SBUF_INIT, .max = max_bytes};
        struct curl_slist *hdrs = NULL;
        CURL *c = curl_easy_init();
        if (c == NULL)
            return err_set(err, -ENOMEM, "curl_easy_init failed");
        if ((rc = setup_easy(c, net, url, NULL, &hdrs, err)) < 0) {
            curl_easy_cleanup(c);
            return rc;
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, mem_on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &m);
        CURLcode cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &m.status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        int transient = 0;
        if (m.too_large)
            rc = err_set(err, GENAI_ETOO_LARGE, "%s: answer larger than %zu bytes", url, max_bytes);
        else if (cc == CURLE_TOO_MANY_REDIRECTS)
            rc = err_set(err, GENAI_EHTTP, "more than %ld redirects fetching %s",
                         net->max_redirects, url);
        else if (cc != CURLE_OK) {
            rc = err_set(err, GENAI_EUNAVAILABLE, "%s: %s", url, curl_easy_strerror(cc));
            transient = is_transient_curl(cc);
        } else if (m.status == 404)
            rc = err_set(err, GENAI_ENOT_FOUND, "HTTP 404 for %s", url);
        else if (m.status != 200) {
            rc = err_set(err, GENAI_EHTTP, "HTTP %ld for %s", m.status, url);
            transient = is_transient_status(m.status);
        } else if (sbuf_error(&m.b) < 0)
            rc = err_set(err, -ENOMEM, "out of memory reading %s", url);
        else {
            char *next = NULL;
            if (next_link != NULL && m.next[0] != '\0' && (next = mem_strdup(m.next)) == NULL) {
                sbuf_free(&m.b);
                return err_set(err, -ENOMEM, "out of memory");
            }
            size_t n = m.b.len;
            char *data = sbuf_take(&m.b);
            if (data == NULL && (data = mem_strdup("")) == NULL) {
                mem_free(next);
                return err_set(err, -ENOMEM, "out of memory");
            }
            *body = data;
            if (len != NULL)
                *len = n;
            if (next_link != NULL)
                *next_link = next;
            return 0;
        }
        sbuf_free(&m.b);
        if (!transient || attempt >= net->max_attempts)
            return rc;
        if (backoff_wait(net, backoff) < 0)
            return err_set(err, GENAI_ECANCELLED, "cancelled");
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}
