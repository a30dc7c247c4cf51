/*
 * llama_harness.c - child-process and HTTP helpers for the llama-server
 * tests (see llama_harness.h).
 */
#include "cmocka_all.h"

#include "llama_harness.h"

#include "core/alloc.h"
#include "core/paths.h"
#include "testutil/testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void lh_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What lh_cleanup_leftovers must undo: pids not reaped, folders not
 * removed. A test runs at most a handful of children at once. */
#define LH_TRACK_MAX 16
static pid_t tracked_pids[LH_TRACK_MAX];
static char tracked_dirs[LH_TRACK_MAX][256];

static void track_pid(pid_t pid, pid_t replace)
{
    for (size_t i = 0; i < LH_TRACK_MAX; i++) {
        if (tracked_pids[i] == replace) {
            tracked_pids[i] = pid;
            return;
        }
    }
    assert_true(replace != 0); /* more children at once than LH_TRACK_MAX */
}

static void track_dir(const char *dir, const char *replace)
{
    for (size_t i = 0; i < LH_TRACK_MAX; i++) {
        if (strcmp(tracked_dirs[i], replace) == 0) {
            snprintf(tracked_dirs[i], sizeof(tracked_dirs[i]), "%s", dir);
            return;
        }
    }
    assert_true(replace[0] != '\0'); /* more folders at once than LH_TRACK_MAX */
}

int lh_cleanup_leftovers(void)
{
    int killed = 0;
    for (size_t i = 0; i < LH_TRACK_MAX; i++) {
        if (tracked_pids[i] != 0) {
            kill(tracked_pids[i], SIGKILL);
            while (waitpid(tracked_pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
            tracked_pids[i] = 0;
            killed++;
        }
        if (tracked_dirs[i][0] != '\0') {
            tu_rm_rf(tracked_dirs[i]);
            tracked_dirs[i][0] = '\0';
        }
    }
    return killed;
}

void lh_init(lh_child *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/genai-llama-test-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    track_dir(c->dir, "");
    snprintf(c->err_path, sizeof(c->err_path), "%s/stderr", c->dir);
    snprintf(c->out_path, sizeof(c->out_path), "%s/stdout", c->dir);
}

int lh_spawn(lh_child *c, char *const *argv, char *const *envp)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, c->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, c->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = posix_spawn(&c->pid, argv[0], &fa, NULL, argv, envp != NULL ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        c->pid = 0;
        return -rc;
    }
    track_pid(c->pid, 0);
    return 0;
}

int lh_wait_exit(lh_child *c, long ms)
{
    if (c->pid == 0)
        return 1;
    long deadline = tu_now_ms() + ms;
    for (;;) {
        pid_t p = waitpid(c->pid, &c->status, WNOHANG);
        if (p == c->pid) {
            track_pid(0, c->pid);
            c->pid = 0;
            return 1;
        }
        if (tu_now_ms() >= deadline)
            return 0;
        lh_nap_ms(5);
    }
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    sbuf_append(ud, p, size * n);
    return size * n;
}

void lh_http(lh_reply *r, const char *method, unsigned port, const char *path, const char *body,
             const char *key, long timeout_ms)
{
    memset(r, 0, sizeof(*r));
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[256], auth[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (body != NULL)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    r->curl_rc = (int)curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

void lh_reply_free(lh_reply *r)
{
    sbuf_free(&r->body);
    sbuf_free(&r->headers);
}

long lh_wait_ready(lh_child *c, unsigned port, long ms, long *first_status)
{
    long deadline = tu_now_ms() + ms, last = 0;
    if (first_status != NULL)
        *first_status = 0;
    while (tu_now_ms() < deadline) {
        if (lh_wait_exit(c, 0))
            return -1;
        lh_reply r;
        lh_http(&r, "GET", port, "/health", NULL, NULL, 500);
        last = r.status;
        lh_reply_free(&r);
        if (last != 0 && first_status != NULL && *first_status == 0)
            *first_status = last;
        if (last == 200)
            return 200;
        lh_nap_ms(20);
    }
    return 0;
}

char *lh_stderr(const lh_child *c)
{
    char *text = NULL;
    if (paths_read_file(c->err_path, 16u << 20, &text, NULL, NULL) < 0)
        return mem_strdup("");
    return text;
}

void lh_cleanup(lh_child *c)
{
    if (c->pid != 0) {
        kill(c->pid, SIGKILL);
        lh_wait_exit(c, 10000);
    }
    if (c->dir[0] != '\0') {
        tu_rm_rf(c->dir);
        track_dir("", c->dir);
    }
    c->dir[0] = '\0';
}

void lh_write_gguf(const char *path, size_t size)
{
    FILE *f = fopen(path, "wbe");
    assert_non_null(f);
    const unsigned char head[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    assert_int_equal(fwrite(head, 1, sizeof(head), f), sizeof(head));
    for (size_t i = sizeof(head); i < size; i++)
        fputc(0, f);
    fclose(f);
}
