/*
 * httpcheck.c - sup_check over http_client (see httpcheck.h).
 */
#include "proc/httpcheck.h"

#include "core/alloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

enum { HTTPCHECK_MAX_BODY = 64 * 1024 };

typedef struct httpcheck {
    sup_check base; /* first: a sup_check * is a httpcheck * */
    http_client *client;
    char *url;
    char *bearer;
    long expect_status;
    char *json_key;
    char *json_value;
    http_req *inflight;
    sup_probe_cb cb;
    void *cb_arg;
} httpcheck;

static int body_matches(const httpcheck *hc, const char *body, size_t len)
{
    if (hc->json_key == NULL)
        return 1;
    json_t *root = json_loadb(body, len, 0, NULL);
    if (root == NULL)
        return 0;
    const char *v = json_string_value(json_object_get(root, hc->json_key));
    int ok = v != NULL && strcmp(v, hc->json_value) == 0;
    json_decref(root);
    return ok;
}

static void on_done(void *arg, const http_result *res)
{
    httpcheck *hc = arg;
    hc->inflight = NULL;
    char detail[256];
    sup_probe_result r;
    if (res->rc < 0) {
        r = SUP_PROBE_NO_ANSWER;
        snprintf(detail, sizeof(detail), "%s: %s", hc->url, res->error);
    } else if (res->status == hc->expect_status && body_matches(hc, res->body, res->body_len)) {
        r = SUP_PROBE_READY;
        snprintf(detail, sizeof(detail), "%s: %ld", hc->url, res->status);
    } else {
        r = SUP_PROBE_NOT_READY;
        snprintf(detail, sizeof(detail), "%s: %ld %.120s", hc->url, res->status, res->body);
    }
    hc->cb(hc->cb_arg, r, detail);
}

static int hc_probe(sup_check *self, int timeout_ms, sup_probe_cb cb, void *arg)
{
    httpcheck *hc = (httpcheck *)self;
    if (hc->inflight != NULL)
        return GENAI_EBUSY;
    http_get_opts o = {.url = hc->url,
                       .bearer = hc->bearer,
                       .timeout_ms = timeout_ms,
                       .max_body = HTTPCHECK_MAX_BODY};
    hc->cb = cb;
    hc->cb_arg = arg;
    return http_client_get(hc->client, &o, on_done, hc, &hc->inflight);
}

static void hc_cancel(sup_check *self)
{
    httpcheck *hc = (httpcheck *)self;
    http_req_cancel(hc->inflight);
    hc->inflight = NULL;
}

static void hc_destroy(sup_check *self)
{
    httpcheck *hc = (httpcheck *)self;
    if (hc == NULL)
        return;
    hc_cancel(self);
    mem_free(hc->url);
    mem_free(hc->bearer);
    mem_free(hc->json_key);
    mem_free(hc->json_value);
    mem_free(hc);
}

int proc_httpcheck_new(http_client *client, const proc_httpcheck_opts *o, sup_check **out,
                       genai_error *err)
{
    if (client == NULL || o == NULL || o->port < 1 || o->port > 65535 || o->path == NULL ||
        o->path[0] != '/' || (o->json_key != NULL && o->json_value == NULL))
        return err_set(err, GENAI_EBAD_ARG, "HTTP check: bad options");
    httpcheck *hc = mem_calloc(1, sizeof(*hc));
    if (hc == NULL)
        return err_set(err, -ENOMEM, "allocating an HTTP check");
    hc->base = (sup_check){hc_probe, hc_cancel, hc_destroy};
    hc->client = client;
    hc->expect_status = o->expect_status != 0 ? o->expect_status : 200;
    char url[1024];
    int n = snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", o->port, o->path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        hc_destroy(&hc->base);
        return err_set(err, GENAI_EBAD_ARG, "HTTP check: path too long");
    }
    hc->url = mem_strdup(url);
    hc->bearer = o->bearer != NULL ? mem_strdup(o->bearer) : NULL;
    hc->json_key = o->json_key != NULL ? mem_strdup(o->json_key) : NULL;
    hc->json_value = o->json_value != NULL ? mem_strdup(o->json_value) : NULL;
    if (hc->url == NULL || (o->bearer != NULL && hc->bearer == NULL) ||
        (o->json_key != NULL && (hc->json_key == NULL || hc->json_value == NULL))) {
        hc_destroy(&hc->base);
        return err_set(err, -ENOMEM, "allocating an HTTP check");
    }
    *out = &hc->base;
    return 0;
}
