/*
 * routes_runtime.c - the native runtime routes (native.h, docs/api.md):
 * the LLM runtime (POST /api/llm/start, POST /api/llm/stop, GET /api/llm,
 * GET /api/llm/logs) and asynchronous image jobs (POST /api/images, GET and
 * DELETE /api/images/{id}).
 *
 * Everything goes through the runtime service (api/service.h), on the loop
 * thread. GET /api/llm/logs reads the LLM child's recent stdout and
 * stderr lines from the supervisor's rings (llm_runtime_tail). Start and
 * stop answer when the LLM is READY (or failed) and when
 * it is stopped with its memory reclaimed; a client that leaves first does
 * not cancel them. An image job created here runs whether or not anyone
 * polls it; its result is kept as long as the runner keeps finished jobs
 * (10 minutes).
 */
#include "http/native.h"

#include "api/service.h"
#include "core/alloc.h"
#include "core/sbuf.h"
#include "llm/runtime.h"
#include "plan/llm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define IMAGES_PREFIX "/api/images/"

static void reply_status(http_request *req, svc *s)
{
    json_t *st = svc_llm_status(s);
    if (st == NULL)
        http_reply_error(req, 500, "internal", "out of memory", NULL);
    else
        http_reply_json(req, 200, st);
}

/* ---- the LLM runtime ------------------------------------------------------------ */

typedef struct rt_req {
    http_request *req;
    svc *s;
    svc_wait *wait;
    int stop;
} rt_req;

static void rt_answered(void *arg, const svc_reply *r)
{
    rt_req *q = arg;
    http_req_on_abort(q->req, NULL, NULL);
    if (r->code != 0) {
        http_reply_svc(q->req, r);
    } else if (q->stop) {
        /* Stopped and reclaimed: the orchestrator marks it absent as soon
         * as the loop runs again (its reclaimed event comes first). */
        json_t *st = svc_llm_status(q->s);
        if (st != NULL) {
            json_object_set_new(st, "state", json_string("absent"));
            json_object_set_new(st, "pid", json_integer(0));
            http_reply_json(q->req, 200, st);
        } else {
            http_reply_error(q->req, 500, "internal", "out of memory", NULL);
        }
    } else {
        reply_status(q->req, q->s);
    }
    mem_free(q);
}

/* The client left: the start or stop goes on, nobody is told. */
static void rt_abort(http_request *req, void *arg)
{
    rt_req *q = arg;
    http_req_on_abort(req, NULL, NULL);
    svc_wait_cancel(q->wait, 0);
    http_reply_error(req, 499, "cancelled", "the client went away", NULL);
    mem_free(q);
}

static int opt_uint(json_t *body, const char *key, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return -1;
    *out = json_integer_value(v);
    return 1;
}

void http_h_api_llm_start(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s == NULL)
        return;
    json_t *body = http_req_json(req);
    json_t *model = json_object_get(body, "model");
    int64_t ctx = 0, ngl = PLAN_NGL_AUTO;
    int rc_ctx = opt_uint(body, "ctx", 1 << 24, &ctx);
    int rc_ngl = opt_uint(body, "ngl", 100000, &ngl);
    if (!json_is_string(model) || rc_ctx < 0 || rc_ngl < 0) {
        http_reply_error(req, 400, "bad_request",
                         "expected {\"model\": ID, \"ctx\": N?, \"ngl\": N?} with non-negative "
                         "integers",
                         NULL);
        return;
    }
    rt_req *q = mem_calloc(1, sizeof(*q));
    if (q == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    q->req = req;
    q->s = s;
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_llm_start(s, json_string_value(model), (uint32_t)ctx, (int32_t)ngl, rt_answered, q,
                           &q->wait, &e);
    if (rc < 0) {
        mem_free(q);
        http_reply_rc(req, rc, &e);
        return;
    }
    http_req_on_abort(req, rt_abort, q);
}

void http_h_api_llm_stop(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s == NULL)
        return;
    rt_req *q = mem_calloc(1, sizeof(*q));
    if (q == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    q->req = req;
    q->s = s;
    q->stop = 1;
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_llm_stop(s, rt_answered, q, &q->wait, &e);
    if (rc != 0) {
        mem_free(q);
        if (rc < 0)
            http_reply_rc(req, rc, &e);
        else
            reply_status(req, s); /* nothing was loaded */
        return;
    }
    http_req_on_abort(req, rt_abort, q);
}

void http_h_api_llm(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s != NULL)
        reply_status(req, s);
}

/* The line with every byte outside printable ASCII as '?'. */
static json_t *ascii_line(const char *p, size_t n)
{
    char *copy = mem_alloc(n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f ? p[i] : '?';
    json_t *j = json_stringn(copy, n);
    mem_free(copy);
    return j;
}

/* Appends each line of text (LF-separated) to arr as a string. */
static int append_lines(json_t *arr, const char *p)
{
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        json_t *line = json_stringn(p, n);
        if (line == NULL) /* not UTF-8 (a child prints what it likes) */
            line = ascii_line(p, n);
        if (line == NULL || json_array_append_new(arr, line) != 0)
            return -ENOMEM;
        p += n + (nl != NULL);
    }
    return 0;
}

/* The child's last lines of one stream as a JSON array; NULL without memory. */
static json_t *tail_json(llm_runtime *rt, int stream, size_t max_lines)
{
    json_t *arr = json_array();
    if (arr == NULL || rt == NULL)
        return arr;
    sbuf b = SBUF_INIT;
    llm_runtime_tail(rt, stream, max_lines, &b);
    int rc = append_lines(arr, sbuf_str(&b));
    sbuf_free(&b);
    if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ?limit=N (1..1000, default 64): lines per stream. 0 after a 400 reply. */
static int logs_limit(http_request *req, size_t *out)
{
    const char *v = http_req_query(req, "limit");
    *out = 64;
    if (v == NULL)
        return 1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < 1 || n > 1000) {
        http_reply_error(req, 400, "bad_request", "\"limit\" is a number from 1 to 1000", NULL);
        return 0;
    }
    *out = n;
    return 1;
}

void http_h_api_llm_logs(http_request *req)
{
    svc *s = http_need_svc(req);
    size_t limit;
    if (s == NULL || !logs_limit(req, &limit))
        return;
    /* The supervisor keeps a ring of the child's recent lines per stream
     * (the current child, or the last one after it exited); the runtime
     * keeps its last failure. No runtime: empty lists. */
    llm_runtime *rt = orch_llm_runtime(svc_orch(s));
    const genai_error *le = rt != NULL ? llm_runtime_error(rt) : NULL;
    json_t *failure = json_null();
    if (le != NULL && le->code != 0) {
        json_t *fl = json_array();
        if (fl == NULL || append_lines(fl, le->detail) < 0) {
            json_decref(fl);
            fl = NULL;
        }
        failure = fl != NULL
                      ? json_pack("{s:s, s:o}", "error", genai_err_name(le->code), "lines", fl)
                      : NULL;
    }
    json_t *out = tail_json(rt, 1, limit);
    json_t *err = tail_json(rt, 2, limit);
    json_t *body = NULL;
    if (out != NULL && err != NULL && failure != NULL)
        body = json_pack("{s:s?, s:s, s:I, s:O, s:o, s:o, s:o}", "model",
                         orch_llm_model_id(svc_orch(s)), "state",
                         orch_llm_state_name(orch_llm_status(svc_orch(s), NULL)), "pid",
                         (json_int_t)orch_llm_pid(svc_orch(s)), "lines", err, "stdout", out,
                         "stderr", err, "last_failure", failure);
    else {
        json_decref(out);
        json_decref(err);
        json_decref(failure);
    }
    if (body == NULL)
        http_reply_error(req, 500, "internal", "out of memory", NULL);
    else
        http_reply_json(req, 200, body);
}

/* ---- image jobs ------------------------------------------------------------------- */

typedef struct job_req {
    http_request *req;
    svc *s;
    svc_wait *wait;
} job_req;

static void job_submitted(void *arg, const svc_reply *r)
{
    job_req *q = arg;
    http_req_on_abort(q->req, NULL, NULL);
    if (r->code != 0) {
        http_reply_svc(q->req, r);
    } else {
        json_t *j = svc_image_job_json(q->s, r->job, 0);
        if (j == NULL)
            http_reply_error(q->req, 500, "internal", "out of memory", NULL);
        else
            http_reply_json(q->req, 202, j);
    }
    mem_free(q);
}

static void job_abort(http_request *req, void *arg)
{
    job_req *q = arg;
    http_req_on_abort(req, NULL, NULL);
    svc_wait_cancel(q->wait, 0);
    http_reply_error(req, 499, "cancelled", "the client went away", NULL);
    mem_free(q);
}

void http_h_api_images_create(http_request *req)
{
    svc *s = http_need_svc(req);
    if (s == NULL)
        return;
    job_req *q = mem_calloc(1, sizeof(*q));
    if (q == NULL) {
        http_reply_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    q->req = req;
    q->s = s;
    svc_image_cbs cb = {.submitted = job_submitted};
    genai_error e;
    genai_error_clear(&e);
    int rc = svc_image_submit(s, http_req_json(req), &cb, q, &q->wait, &e);
    if (rc < 0) {
        mem_free(q);
        http_reply_rc(req, rc, &e);
        return;
    }
    http_req_on_abort(req, job_abort, q);
}

/* The id after the prefix: 1 and *id, or 0 after a 400 reply. */
static int job_id(http_request *req, uint64_t *id)
{
    const char *t = http_req_path(req) + strlen(IMAGES_PREFIX);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(t, &end, 10);
    if (t[0] < '1' || t[0] > '9' || *end != '\0' || errno != 0) {
        http_reply_error(req, 400, "bad_request", "an image job id is a positive number", NULL);
        return 0;
    }
    *id = v;
    return 1;
}

void http_h_api_image_get(http_request *req)
{
    svc *s = http_need_svc(req);
    uint64_t id;
    if (s == NULL || !job_id(req, &id))
        return;
    json_t *j = svc_image_job_json(s, id, 1);
    if (j == NULL)
        http_reply_error(req, 404, "not_found", "no such image job (finished jobs are kept 10 min)",
                         NULL);
    else
        http_reply_json(req, 200, j);
}

void http_h_api_image_cancel(http_request *req)
{
    svc *s = http_need_svc(req);
    uint64_t id;
    if (s == NULL || !job_id(req, &id))
        return;
    if (svc_image_cancel(s, id) < 0) {
        http_reply_error(req, 404, "not_found", "no such image job, or it has finished", NULL);
        return;
    }
    json_t *j = svc_image_job_json(s, id, 0);
    http_reply_json(req, 200, j != NULL ? j : json_object());
}
