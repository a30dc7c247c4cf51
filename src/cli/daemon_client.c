/*
 * daemon_client.c - finding `genai serve` through serve.json and calling it
 * over HTTP with libcurl (see daemon_client.h).
 *
 * The CLI is a short-lived single-threaded process, so blocking curl easy
 * calls are right here. Sockets are made close-on-exec anyway (the house
 * rule, and curl 7.88 does not do it). Proxies from the environment are
 * ignored: the daemon is on this machine.
 */
#include "cli/daemon_client.h"

#include "cli.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/sbuf.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* serve.json is a few lines; anything larger is not ours. */
#define STATE_MAX (16u * 1024u)
/* Replies the CLI reads (status, logs) are small; cap them anyway. */
#define REPLY_MAX (8u * 1024u * 1024u)

int daemon_pid_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    /* A zombie still answers kill(pid, 0); /proc tells (Linux). */
    char path[64], *text = NULL;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (paths_read_file(path, 4096, &text, NULL, NULL) < 0)
        return 1;
    const char *close_paren = strrchr(text, ')');
    int zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    mem_free(text);
    return !zombie;
}

int daemon_find(daemon_info *out, genai_error *err)
{
    memset(out, 0, sizeof(*out));
    genai_paths paths;
    int rc = paths_resolve(&paths, err);
    if (rc < 0)
        return rc;
    if ((rc = paths_join(out->state_path, sizeof(out->state_path), paths.runtime, "serve.json")) <
        0)
        return err_set(err, rc, "the runtime folder path is too long");
    char *text = NULL;
    size_t len = 0;
    genai_error rerr;
    rc = paths_read_file(out->state_path, STATE_MAX, &text, &len, &rerr);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return err_set(err, rc, "%s", rerr.detail);
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    mem_free(text);
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    const char *url = json_string_value(json_object_get(j, "url"));
    const char *version = json_string_value(json_object_get(j, "version"));
    if (j == NULL || pid <= 0 || pid > 0x7fffffff || url == NULL ||
        strncmp(url, "http://", 7) != 0 || strlen(url) >= sizeof(out->url)) {
        json_decref(j);
        return err_set(err, GENAI_ECORRUPT, "%s is not a genai serve state file", out->state_path);
    }
    out->pid = (pid_t)pid;
    snprintf(out->url, sizeof(out->url), "%s", url);
    snprintf(out->version, sizeof(out->version), "%s", version != NULL ? version : "?");
    json_decref(j);
    return daemon_pid_alive(out->pid) ? 1 : 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    sbuf *b = arg;
    size_t k = size * n;
    if (b->len + k > REPLY_MAX || sbuf_append(b, p, k) < 0)
        return 0; /* makes curl fail the transfer */
    return k;
}

static curl_socket_t open_cloexec(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int daemon_request(const daemon_info *d, const char *method, const char *path, const char *body,
                   long timeout_s, long *status, json_t **reply, genai_error *err)
{
    genai_config cfg;
    genai_error cerr;
    /* Only the key matters here; a config the daemon would refuse is the
     * daemon's problem, so a load failure just means "no key". */
    if (config_load(&cfg, NULL, &cerr) < 0)
        config_init(&cfg);
    char url[512], auth[1100];
    snprintf(url, sizeof(url), "%s%s", d->url, path);
    int rc = 0;
    sbuf resp = SBUF_INIT;
    struct curl_slist *hl = NULL;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        rc = err_set(err, -ENOMEM, "starting an HTTP client");
        goto out;
    }
    if (cfg.api_key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg.api_key);
        hl = curl_slist_append(hl, auth);
    }
    if (body != NULL)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = err_set(err, GENAI_EUNAVAILABLE, "the genai daemon at %s (pid %d) does not answer: %s",
                     d->url, (int)d->pid, curl_easy_strerror(cc));
        goto out;
    }
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    *status = st;
    *reply = json_loadb(sbuf_str(&resp), resp.len, 0, NULL);

out:
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    sbuf_free(&resp);
    config_free(&cfg);
    return rc;
}

void daemon_report_none(const char *cmd, const daemon_info *d)
{
    if (d->pid > 0)
        fprintf(stderr,
                "genai %s: no genai daemon is running (looked for %s; it names pid %d, which is "
                "not running)\n",
                cmd, d->state_path, (int)d->pid);
    else
        fprintf(stderr, "genai %s: no genai daemon is running (looked for %s)\n", cmd,
                d->state_path);
}

void daemon_report_reply(const char *cmd, long status, json_t *reply)
{
    json_t *e = json_object_get(reply, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *sug = json_string_value(json_object_get(e, "suggestion"));
    fprintf(stderr, "genai %s: the daemon answered %ld%s%s\n", cmd, status, msg ? ": " : "",
            msg ? msg : "");
    if (sug != NULL)
        fprintf(stderr, "  %s\n", sug);
}
