/*
 * image_api.c - the image half of the public C API (include/genai.h):
 * genai_image_generate and genai_image (blocking), genai_image_submit,
 * genai_image_poll and genai_image_cancel (asynchronous), through the
 * context's runtime service (api/service.h) on its loop thread.
 *
 * The caller parses the request JSON; everything else happens on the loop
 * inside one loop_call_wait: svc_image_submit looks the model up, the
 * orchestrator admits the job (moving the LLM aside when both do not fit)
 * and the runner reports progress and the end. A blocking call completes
 * when the job is done, with the result built on the loop thread while the
 * job's images are still held by the runner: the OpenAI response
 * (svc_image_result) or the PNG bytes copied into a genai_image_result.
 * The caller's genai_error and out-parameters are written on the loop
 * thread while the caller sleeps in loop_call_wait.
 *
 * An asynchronous job completes the call once admitted; its callbacks then
 * live in a heap api_job that the job's done callback frees (the service
 * calls it exactly once after an admission, with GENAI_ECANCELLED when the
 * context is freed first).
 */
#include "api/context.h"

#include "core/alloc.h"
#include "core/log.h"
#include "image/resolve.h"
#include "image/runner.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MOD "api"

#define CHECK_G(g, err, fn)                                                                        \
    do {                                                                                           \
        if ((g) == NULL)                                                                           \
            return err_set((err), GENAI_EBAD_ARG, "%s: the context is NULL", (fn));                \
        int busy_ = api_not_on_loop((g), (fn), (err));                                             \
        if (busy_ < 0)                                                                             \
            return busy_;                                                                          \
    } while (0)

typedef struct img_call {
    genai *g;
    json_t *body;
    genai_image_progress_fn progress;
    void *userdata;
    genai_error *err;
    loop_completion *c;
    uint64_t job;
    int want_bytes;
    char *json;              /* genai_image_generate, genai_image_poll */
    genai_image_result *res; /* genai_image */
} img_call;

static int parse_request(const char *request_json, json_t **out, genai_error *err)
{
    if (request_json == NULL)
        return err_set(err, GENAI_EBAD_ARG, "the request is NULL");
    json_error_t je;
    json_t *j = json_loads(request_json, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(err, GENAI_EBAD_ARG, "the request is not a JSON object (%s)", je.text);
    }
    *out = j;
    return 0;
}

/* ---- results -------------------------------------------------------------- */

void genai_image_result_free(genai_image_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        mem_free(r->images[i].png);
    mem_free(r->images);
    mem_free(r->warnings_json);
    mem_free(r);
}

/* The job's images as bytes, with the warnings of the model's settings.
 * Loop thread, right after the job ended (the runner still holds them). */
static int result_bytes(svc *s, uint64_t job, genai_image_result **out, genai_error *err)
{
    orch *o = svc_orch(s);
    const orch_job *oj = orch_image_job(o, job);
    const img_job *rj = oj != NULL ? img_runner_job(orch_runner(o), oj->runner_id) : NULL;
    if (rj == NULL)
        return err_set(err, GENAI_ENOT_FOUND, "image job %llu: its images are no longer kept",
                       (unsigned long long)job);
    genai_image_result *r = mem_calloc(1, sizeof(*r));
    if (r == NULL)
        return err_set(err, -ENOMEM, "image result");
    int rc = 0;
    r->job = job;
    r->offloaded = oj->offloaded;
    if (rj->n_results > 0 && (r->images = mem_calloc(rj->n_results, sizeof(*r->images))) == NULL) {
        rc = err_set(err, -ENOMEM, "image result");
        goto fail;
    }
    for (uint32_t i = 0; i < rj->n_results; i++) {
        const img_result *src = &rj->results[i];
        genai_image_out *dst = &r->images[i];
        if ((dst->png = mem_alloc(src->png_len > 0 ? src->png_len : 1)) == NULL) {
            rc = err_set(err, -ENOMEM, "image result");
            goto fail;
        }
        r->count = i + 1;
        memcpy(dst->png, src->png, src->png_len);
        dst->png_len = src->png_len;
        dst->width = src->width;
        dst->height = src->height;
        dst->seed = src->seed;
    }
    json_t *res = oj->resolution != NULL ? img_resolution_to_json(oj->resolution) : NULL;
    json_t *w = json_object_get(res, "warnings");
    json_t *warnings = json_is_array(w) ? json_incref(w) : json_array();
    json_decref(res);
    if ((rc = api_dump_json(warnings, &r->warnings_json, err)) < 0)
        goto fail;
    *out = r;
    return 0;

fail:
    genai_image_result_free(r);
    return rc;
}

/* ---- blocking ---------------------------------------------------------------- */

static void call_submitted(void *arg, const svc_reply *r)
{
    img_call *q = arg;
    if (r->code != 0) {
        loop_complete(q->c, api_reply_error(r, q->err)); /* nothing follows */
        return;
    }
    q->job = r->job;
}

static void call_progress(void *arg, uint64_t job, const img_progress *p)
{
    img_call *q = arg;
    if (q->progress != NULL)
        q->progress(job, (int)p->step, (int)p->steps, q->userdata);
}

static void call_done(void *arg, const svc_reply *r)
{
    img_call *q = arg;
    svc *s = q->g->svc;
    int rc = r->code;
    if (rc != 0) {
        api_reply_error(r, q->err);
    } else if (q->want_bytes) {
        rc = result_bytes(s, r->job, &q->res, q->err);
    } else {
        const char *detail;
        json_t *res = svc_image_result(s, r->job, &rc, &detail);
        if (res == NULL)
            err_set(q->err, rc, "%s", detail);
        else
            rc = api_dump_json(res, &q->json, q->err);
    }
    loop_complete(q->c, rc);
}

static void generate_on_loop(loop *l, void *arg, loop_completion *c)
{
    img_call *q = arg;
    (void)l;
    q->c = c;
    svc_image_cbs cb = {.submitted = call_submitted, .progress = call_progress, .done = call_done};
    int rc = svc_image_submit(q->g->svc, q->body, &cb, q, NULL, q->err);
    if (rc < 0)
        loop_complete(c, rc);
}

static int generate(img_call *q, const char *request_json, genai_error *err)
{
    int rc = parse_request(request_json, &q->body, err);
    if (rc < 0)
        return rc;
    rc = loop_call_wait(q->g->l, generate_on_loop, q);
    json_decref(q->body);
    if (rc < 0 && err != NULL && err->code == 0)
        err_set(err, rc, "the context is stopping");
    return rc;
}

int genai_image_generate(genai *g, const char *request_json, genai_image_progress_fn progress,
                         void *userdata, char **result_json, genai_error *err)
{
    CHECK_G(g, err, "genai_image_generate");
    if (result_json == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_image_generate: result_json is NULL");
    img_call q = {.g = g, .progress = progress, .userdata = userdata, .err = err};
    int rc = generate(&q, request_json, err);
    if (rc < 0)
        return rc;
    *result_json = q.json;
    return 0;
}

int genai_image(genai *g, const char *request_json, genai_image_progress_fn progress,
                void *userdata, genai_image_result **out, genai_error *err)
{
    CHECK_G(g, err, "genai_image");
    if (out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_image: out is NULL");
    img_call q = {.g = g, .progress = progress, .userdata = userdata, .err = err, .want_bytes = 1};
    int rc = generate(&q, request_json, err);
    if (rc < 0)
        return rc;
    *out = q.res;
    return 0;
}

/* ---- asynchronous ------------------------------------------------------------ */

typedef struct api_job {
    genai *g;
    img_call *call; /* until admitted */
    genai_image_progress_fn progress;
    genai_image_done_fn done;
    void *userdata;
} api_job;

static void job_submitted(void *arg, const svc_reply *r)
{
    api_job *j = arg;
    img_call *q = j->call;
    j->call = NULL;
    if (r->code != 0) {
        int rc = api_reply_error(r, q->err);
        mem_free(j); /* the service calls nothing more */
        loop_complete(q->c, rc);
        return;
    }
    q->job = r->job;
    loop_complete(q->c, 0);
}

static void job_progress(void *arg, uint64_t job, const img_progress *p)
{
    api_job *j = arg;
    if (j->progress != NULL)
        j->progress(job, (int)p->step, (int)p->steps, j->userdata);
}

static void job_done(void *arg, const svc_reply *r)
{
    api_job *j = arg;
    int code = r->code;
    json_t *body = NULL;
    if (code == 0) {
        const char *detail = "";
        body = svc_image_result(j->g->svc, r->job, &code, &detail);
        if (body == NULL)
            body = json_pack("{s:{s:s, s:s}}", "error", "code", "internal", "message", detail);
    } else {
        body = json_pack("{s:{s:s, s:s}}", "error", "code", r->error ? r->error : "internal",
                         "message", r->detail ? r->detail : genai_strerror(code));
    }
    char *text = NULL;
    if (api_dump_json(body, &text, NULL) < 0)
        LOG_WARN(MOD, "image job %llu: no memory for the result JSON", (unsigned long long)r->job);
    if (j->done != NULL)
        j->done(r->job, code, text != NULL ? text : "{}", j->userdata);
    mem_free(text);
    mem_free(j);
}

static void submit_on_loop(loop *l, void *arg, loop_completion *c)
{
    api_job *j = arg;
    (void)l;
    img_call *q = j->call;
    q->c = c;
    svc_image_cbs cb = {.submitted = job_submitted, .progress = job_progress, .done = job_done};
    int rc = svc_image_submit(q->g->svc, q->body, &cb, j, NULL, q->err);
    if (rc < 0) {
        mem_free(j);
        loop_complete(c, rc);
    }
}

int genai_image_submit(genai *g, const char *request_json, genai_image_progress_fn progress,
                       genai_image_done_fn done, void *userdata, uint64_t *job_out,
                       genai_error *err)
{
    CHECK_G(g, err, "genai_image_submit");
    if (job_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_image_submit: job_out is NULL");
    img_call q = {.g = g, .err = err};
    int rc = parse_request(request_json, &q.body, err);
    if (rc < 0)
        return rc;
    api_job *j = mem_calloc(1, sizeof(*j));
    if (j == NULL) {
        json_decref(q.body);
        return err_set(err, -ENOMEM, "image job");
    }
    *j = (api_job){g, &q, progress, done, userdata};
    rc = loop_call_wait(g->l, submit_on_loop, j);
    json_decref(q.body);
    if (rc < 0 && q.c == NULL) /* the message never ran (the loop is stopping) */
        mem_free(j);
    if (rc < 0) {
        if (err != NULL && err->code == 0)
            err_set(err, rc, "the context is stopping");
        return rc;
    }
    *job_out = q.job;
    return 0;
}

static void poll_on_loop(loop *l, void *arg, loop_completion *c)
{
    img_call *q = arg;
    (void)l;
    json_t *j = svc_image_job_json(q->g->svc, q->job, 1);
    if (j == NULL) {
        loop_complete(c, err_set(q->err, GENAI_ENOT_FOUND,
                                 "no image job %llu (finished jobs are kept 10 minutes)",
                                 (unsigned long long)q->job));
        return;
    }
    loop_complete(c, api_dump_json(j, &q->json, q->err));
}

int genai_image_poll(genai *g, uint64_t job, char **json_out, genai_error *err)
{
    CHECK_G(g, err, "genai_image_poll");
    if (json_out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "genai_image_poll: json_out is NULL");
    img_call q = {.g = g, .err = err, .job = job};
    int rc = loop_call_wait(g->l, poll_on_loop, &q);
    if (rc < 0)
        return rc;
    *json_out = q.json;
    return 0;
}

static void cancel_on_loop(loop *l, void *arg, loop_completion *c)
{
    img_call *q = arg;
    (void)l;
    int rc = svc_image_cancel(q->g->svc, q->job);
    if (rc < 0)
        rc = err_set(q->err, GENAI_ENOT_FOUND, "no image job %llu, or it has finished",
                     (unsigned long long)q->job);
    loop_complete(c, rc);
}

int genai_image_cancel(genai *g, uint64_t job, genai_error *err)
{
    CHECK_G(g, err, "genai_image_cancel");
    img_call q = {.g = g, .err = err, .job = job};
    return loop_call_wait(g->l, cancel_on_loop, &q);
}
