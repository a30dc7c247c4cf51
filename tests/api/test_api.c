/*
 * test_api.c - the public C API (include/genai.h) end to end: configuration,
 * a context on a temporary GENAI_HOME, the system snapshot, the model
 * registry (list, show, remove), pulls from the store tests' scripted HTTP
 * server with progress, cancellation from the callback and from another
 * thread, a diffusion model pulled with its components, the event callback, the runtime calls'
 * checks, and many threads using one context at once (run it under TSan).
 */
#include "cmocka_all.h"

#include "genai.h"

#include "core/paths.h"
#include "store/digest.h"
#include "store/store.h"

#include "../store/script_server.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_home[96];
static char g_tiny[PATHS_MAX];
static unsigned char *g_gguf;
static size_t g_gguf_len;
static char g_sha[STORE_SHA256_HEX];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(tu_mkdtemp(g_home, sizeof(g_home), "api"), 0);
    setenv("GENAI_HOME", g_home, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rm_rf(g_home);
    return 0;
}

static void add_tiny(const char *id)
{
    store *s = NULL;
    genai_error e;
    assert_int_equal(store_open(&s, &e), 0);
    store_add_file f = {.role = "model", .path = g_tiny};
    if (store_add(s, id, NULL, STORE_KIND_LLM, &f, 1, NULL, &e) < 0)
        fail_msg("store_add: %s", e.detail);
    store_close(s);
}

static genai *new_ctx(void)
{
    genai *g = NULL;
    genai_error e;
    genai_error_clear(&e);
    int rc = genai_new(NULL, &g, &e);
    if (rc < 0)
        fail_msg("genai_new: %s %s", genai_err_name(rc), e.detail);
    return g;
}

/* ---- events, collected on the loop thread ------------------------------- */

typedef struct evlog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char types[1024];
    int n;
} evlog;

static void on_event(const char *type, const char *json, void *ud)
{
    evlog *l = ud;
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    json_decref(j);
    pthread_mutex_lock(&l->mu);
    size_t used = strlen(l->types);
    snprintf(l->types + used, sizeof(l->types) - used, "%s;", type);
    l->n++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Waits until n events arrived or 10 s passed; returns the count. */
static int ev_wait(evlog *l, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&l->mu);
    while (l->n < n && pthread_cond_timedwait(&l->cv, &l->mu, &dl) == 0)
        ;
    int got = l->n;
    pthread_mutex_unlock(&l->mu);
    return got;
}

/* ---- tests -------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    genai_config *c = NULL;
    genai_error e;
    assert_int_equal(genai_config_new(&c, &e), 0);
    assert_int_equal(genai_config_set(c, "port", "8081", &e), 0);
    assert_int_equal(genai_config_set(c, "port", "99999", &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "port"));
    assert_int_equal(genai_config_set(c, "no_such_key", "1", &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "no_such_key"));
    genai_config_free(c);
    genai_config_free(NULL);

    char path[PATHS_MAX];
    snprintf(path, sizeof(path), "%s/bad.json", g_home);
    assert_int_equal(tu_write(path, "{\"colour\": 1}", 13), 0);
    c = (genai_config *)&e; /* must stay untouched on failure */
    assert_int_equal(genai_config_load(&c, path, &e), GENAI_EBAD_ARG);
    assert_ptr_equal(c, (genai_config *)&e);
    assert_non_null(strstr(e.detail, "colour"));
    snprintf(path, sizeof(path), "%s/good.json", g_home);
    assert_int_equal(tu_write(path, "{\"port\": 12345}", 15), 0);
    c = NULL;
    assert_int_equal(genai_config_load(&c, path, &e), 0);
    genai *g = NULL;
    assert_int_equal(genai_new(c, &g, &e), 0);
    genai_config_free(c); /* copied by genai_new */
    genai_free(g);
    genai_free(NULL);
}

static void test_system_and_registry(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    genai *g = new_ctx();
    genai_error e;
    char *s = NULL;

    assert_int_equal(genai_system(g, &s, &e), 0);
    json_t *j = json_loads(s, 0, NULL);
    assert_non_null(j);
    assert_true(json_integer_value(json_object_get(json_object_get(j, "cpu"), "logical")) > 0);
    json_decref(j);
    genai_free_string(s);

    assert_int_equal(genai_models_list(g, &s, &e), 0);
    assert_string_equal(s, "[]");
    genai_free_string(s);

    evlog l = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, "", 0};
    assert_int_equal(genai_set_event_callback(g, on_event, &l, &e), 0);

    add_tiny("tiny");
    assert_int_equal(genai_models_list(g, &s, &e), 0);
    j = json_loads(s, 0, NULL);
    assert_int_equal(json_array_size(j), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "id")), "tiny");
    json_decref(j);
    genai_free_string(s);

    s = (char *)"untouched";
    assert_int_equal(genai_model_show(g, "ghost", &s, &e), GENAI_ENOT_FOUND);
    assert_string_equal(s, "untouched");
    assert_int_equal(e.code, GENAI_ENOT_FOUND);
    assert_int_equal(genai_model_show(g, "tiny", &s, &e), 0);
    j = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "llm");
    json_decref(j);
    genai_free_string(s);

    assert_int_equal(genai_model_remove(g, "tiny", &e), 0);
    assert_int_equal(genai_model_remove(g, "tiny", &e), GENAI_ENOT_FOUND);
    assert_int_equal(ev_wait(&l, 1), 1);
    assert_string_equal(l.types, "model.removed;");
    assert_true(tu_size(g_tiny) > 0); /* added in place: kept */

    assert_int_equal(genai_set_event_callback(g, NULL, NULL, &e), 0);
    add_tiny("tiny2");
    assert_int_equal(genai_model_remove(g, "tiny2", &e), 0);
    genai_free(g); /* runs the queued event: the removed callback must not see it */
    assert_int_equal(l.n, 1);
    assert_int_equal(tu_fd_count(), fds);
}

/* The runtime calls' argument checks and answers for unknown models; the
 * calls themselves are exercised with the doubles in test_api_run.c. */
static void test_runtime_calls_checks(void **state)
{
    (void)state;
    genai *g = new_ctx();
    genai_error e;
    char *s = (char *)"untouched";
    uint64_t job = 77;
    assert_int_equal(genai_llm_start(g, "m", NULL, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "'m'"));
    assert_int_equal(genai_llm_start(g, NULL, NULL, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_llm_stop(g, &e), 0); /* nothing loaded */
    assert_int_equal(genai_llm_status(g, NULL, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_chat(g, "{}", &s, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_chat_stream(g, "{}", NULL, NULL, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_image_generate(g, "{}", NULL, NULL, &s, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_image_generate(g, "{\"prompt\":\"x\"}", NULL, NULL, &s, &e),
                     GENAI_ENOT_FOUND); /* no image model registered */
    assert_int_equal(genai_image_submit(g, "[]", NULL, NULL, NULL, &job, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_image_cancel(g, 1, &e), GENAI_ENOT_FOUND);
    assert_int_equal(genai_image_poll(g, 1, &s, &e), GENAI_ENOT_FOUND);
    assert_string_equal(s, "untouched");
    assert_int_equal(job, 77);
    assert_int_equal(genai_chat(NULL, "{}", &s, &e), GENAI_EBAD_ARG);
    assert_int_equal(genai_models_list(NULL, &s, NULL), GENAI_EBAD_ARG);
    genai_free(g);
}

/* ---- pulls -------------------------------------------------------------- */

typedef struct prog {
    int calls;
    int downloading;
    int cancel_at_downloading;
    uint64_t last_done; /* of any phase */
    char last_phase[16];
    int monotonic;
} prog;

static int on_progress(const genai_pull_progress *p, void *ud)
{
    prog *pr = ud;
    pr->calls++;
    if (p->done < pr->last_done)
        pr->monotonic = 0;
    pr->last_done = p->done;
    snprintf(pr->last_phase, sizeof(pr->last_phase), "%s", p->phase);
    if (strcmp(p->phase, "downloading") == 0) {
        pr->downloading++;
        if (pr->cancel_at_downloading)
            return 1;
    }
    return 0;
}

static void test_pull(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    ss_server *ss = ss_start();
    struct ss_route rt = ss_route_file("/tiny.gguf", g_gguf, g_gguf_len);
    rt.trickle_bytes = 4096;
    rt.trickle_ms = 5;
    ss_route_add(ss, &rt);
    struct ss_route stall = ss_route_file("/stall.gguf", g_gguf, g_gguf_len);
    stall.stall_at = 4096;
    stall.stall_times = 100;
    ss_route_add(ss, &stall);
    genai *g = new_ctx();
    evlog l = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, "", 0};
    genai_error e;
    assert_int_equal(genai_set_event_callback(g, on_event, &l, &e), 0);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tiny.gguf", ss_port(ss));
    prog pr = {.monotonic = 1};
    genai_pull_options o = {.ref = url, .sha256 = g_sha, .progress = on_progress, .userdata = &pr};
    char *s = NULL;
    /* Plain http is refused unless asked for. */
    assert_int_equal(genai_model_pull(g, &o, &s, &e), GENAI_EHTTP);
    assert_null(s);
    o.allow_http = 1;
    int rc = genai_model_pull(g, &o, &s, &e);
    if (rc < 0)
        fail_msg("pull: %s", e.detail);
    assert_int_equal(rc, 0);
    assert_true(pr.downloading >= 1);
    assert_true(pr.monotonic);
    assert_string_equal(pr.last_phase, "done");
    assert_int_equal(pr.last_done, g_gguf_len);
    json_t *j = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "tiny");
    assert_string_equal(json_string_value(json_object_get(j, "sha256")), g_sha);
    json_decref(j);
    genai_free_string(s);
    assert_int_equal(genai_model_pull(g, &o, NULL, &e), 1); /* already there */

    o.kind = "video";
    assert_int_equal(genai_model_pull(g, &o, NULL, &e), GENAI_EBAD_ARG);
    o.kind = NULL;

    /* Cancelled by the progress callback. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stall.gguf", ss_port(ss));
    prog pc = {.monotonic = 1, .cancel_at_downloading = 1};
    genai_pull_options oc = {.ref = url, .allow_http = 1, .progress = on_progress, .userdata = &pc};
    assert_int_equal(genai_model_pull(g, &oc, NULL, &e), GENAI_ECANCELLED);
    assert_int_equal(genai_model_show(g, "stall", &s, &e), GENAI_ENOT_FOUND);

    /* 4 events: failed (http refused), pulled, pulled (already), failed. */
    assert_int_equal(ev_wait(&l, 4), 4);
    assert_string_equal(l.types, "model.pull.failed;model.pulled;model.pulled;model.pull.failed;");

    assert_int_equal(genai_set_event_callback(g, NULL, NULL, &e), 0);
    genai_free(g);
    ss_stop(ss);
    assert_int_equal(tu_fd_count(), fds);
}

/* A diffusion model with its components as "role=REF" strings: they imply
 * kind diffusion, each file keeps its role and URL, and the refusals come
 * before any request. */
static void test_pull_components(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    static const char vae[] = "vae bytes", clip[] = "clip bytes";
    ss_server *ss = ss_start();
    struct ss_route rt = ss_route_file("/tiny.gguf", g_gguf, g_gguf_len);
    ss_route_add(ss, &rt);
    rt = ss_route_file("/ae.safetensors", vae, sizeof(vae) - 1);
    ss_route_add(ss, &rt);
    rt = ss_route_file("/clip_l.safetensors", clip, sizeof(clip) - 1);
    ss_route_add(ss, &rt);
    genai *g = new_ctx();
    genai_error e;
    char url[128], vae_c[160], clip_c[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tiny.gguf", ss_port(ss));
    snprintf(vae_c, sizeof(vae_c), "vae=http://127.0.0.1:%d/ae.safetensors", ss_port(ss));
    snprintf(clip_c, sizeof(clip_c), "clip_l=http://127.0.0.1:%d/clip_l.safetensors", ss_port(ss));

    const char *const no_eq[] = {"vae", NULL};
    const char *const unknown[] = {"unet=hf://o/r/unet.safetensors", NULL};
    const char *const twice[] = {vae_c, vae_c, NULL};
    const char *const five[] = {vae_c, clip_c, "clip_g=x", "t5xxl=y", "vae=z", NULL};
    const char *const set[] = {vae_c, clip_c, NULL};
    genai_pull_options o = {.ref = url, .sha256 = g_sha, .allow_http = 1, .components = set};
    o.kind = "llm"; /* an LLM has no components */
    assert_int_equal(genai_model_pull(g, &o, NULL, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "diffusion"));
    o.kind = NULL;
    const char *const *refused[] = {no_eq, unknown, twice, five};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        o.components = refused[i];
        assert_int_equal(genai_model_pull(g, &o, NULL, &e), GENAI_EBAD_ARG);
    }
    struct ss_request log[4];
    assert_int_equal(ss_log(ss, log, 4), 0);

    /* A digest in a "#sha256=" fragment is what the VAE is checked against:
     * a wrong one registers nothing. */
    char vae_bad[300];
    snprintf(vae_bad, sizeof(vae_bad), "%s#sha256=%s", vae_c, g_sha);
    const char *const bad_set[] = {vae_bad, clip_c, NULL};
    o.components = bad_set;
    assert_int_equal(genai_model_pull(g, &o, NULL, &e), GENAI_ECHECKSUM);
    assert_int_equal(ss_count(ss, "/ae.safetensors"), 1);
    for (size_t i = 0; i < ss_log(ss, log, 4) && i < 4; i++)
        assert_null(strchr(log[i].target, '#')); /* the fragment never travels */

    o.components = set;
    char *s = NULL;
    int rc = genai_model_pull(g, &o, &s, &e);
    if (rc < 0)
        fail_msg("pull: %s", e.detail);
    assert_int_equal(rc, 0);
    json_t *j = json_loads(s, 0, NULL);
    genai_free_string(s);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "diffusion");
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 3);
    static const char *const roles[] = {"model", "clip_l", "vae"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(files, i), "role")),
                            roles[i]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(files, 2), "url")),
                        vae_c + 4);
    json_decref(j);
    assert_int_equal(genai_model_pull(g, &o, NULL, &e), 1); /* the same set: already there */
    assert_int_equal(ss_count(ss, "/ae.safetensors"), 2);   /* the refused copy, then this one */

    genai_free(g);
    ss_stop(ss);
    assert_int_equal(tu_fd_count(), fds);
}

/* genai_models_prune: an orphan file under the models folder goes (not in a
 * dry run), a registered file and a partial download stay unless asked,
 * and a bad age is refused. */
static void test_prune(void **state)
{
    (void)state;
    add_tiny("tiny"); /* registered in place, outside the models folder */
    char dir[300], orphan[400], partial[400];
    snprintf(dir, sizeof(dir), "%s/data/models/url/host", g_home);
    assert_int_equal(paths_mkdirs(dir, 0755, NULL), 0);
    snprintf(orphan, sizeof(orphan), "%s/orphan.gguf", dir);
    snprintf(partial, sizeof(partial), "%s/half.gguf.partial", dir);
    assert_int_equal(tu_write(orphan, "orphan", 6), 0);
    assert_int_equal(tu_write(partial, "half", 4), 0);
    genai *g = new_ctx();
    genai_error e;
    char *s = NULL;

    genai_prune_options o = {.dry_run = 1};
    assert_int_equal(genai_models_prune(g, &o, &s, &e), 0);
    json_t *j = json_loads(s, 0, NULL);
    genai_free_string(s);
    assert_true(json_is_true(json_object_get(j, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_freed")), 6);
    assert_int_equal(json_integer_value(json_object_get(j, "partials_kept")), 1);
    json_decref(j);
    assert_int_equal(tu_size(orphan), 6);

    assert_int_equal(genai_models_prune(g, NULL, NULL, &e), 0); /* defaults, no report */
    assert_int_equal(tu_size(orphan), -1);
    assert_int_equal(tu_size(partial), 4);
    assert_int_equal(tu_size(g_tiny) > 0, 1);

    o = (genai_prune_options){.partials_older_than_days = -1};
    assert_int_equal(genai_models_prune(g, &o, NULL, &e), GENAI_EBAD_ARG);
    assert_int_equal(tu_size(partial), 4);
    o = (genai_prune_options){.partials = 1};
    assert_int_equal(genai_models_prune(g, &o, &s, &e), 0);
    j = json_loads(s, 0, NULL);
    genai_free_string(s);
    json_t *f = json_array_get(json_object_get(j, "files"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "path")), partial);
    assert_string_equal(json_string_value(json_object_get(f, "action")), "removed");
    assert_int_equal(json_integer_value(json_object_get(j, "folders_removed")), 2);
    json_decref(j);
    assert_int_equal(tu_size(partial), -1);
    assert_int_equal(genai_models_prune(NULL, NULL, NULL, &e), GENAI_EBAD_ARG);
    genai_free(g);
}

typedef struct puller {
    genai *g;
    const char *url;
    int rc;
    int started; /* set by the progress callback, read under mu */
    pthread_mutex_t mu;
} puller;

static int mark_started(const genai_pull_progress *p, void *ud)
{
    puller *pl = ud;
    if (strcmp(p->phase, "downloading") == 0) {
        pthread_mutex_lock(&pl->mu);
        pl->started = 1;
        pthread_mutex_unlock(&pl->mu);
    }
    return 0;
}

static void *pull_thread(void *arg)
{
    puller *pl = arg;
    genai_pull_options o = {
        .ref = pl->url, .allow_http = 1, .progress = mark_started, .userdata = pl};
    genai_error e;
    pl->rc = genai_model_pull(pl->g, &o, NULL, &e);
    return NULL;
}

static int puller_started(void *arg)
{
    puller *pl = arg;
    pthread_mutex_lock(&pl->mu);
    int s = pl->started;
    pthread_mutex_unlock(&pl->mu);
    return s;
}

typedef struct reader {
    genai *g;
    int failures;
} reader;

static void *read_thread(void *arg)
{
    reader *r = arg;
    genai_error e;
    for (int i = 0; i < 30; i++) {
        char *s = NULL;
        if (genai_models_list(r->g, &s, &e) < 0)
            r->failures++;
        genai_free_string(s);
        if (genai_model_show(r->g, "tiny", &s, &e) < 0)
            r->failures++;
        genai_free_string(s);
    }
    return NULL;
}

/* A stalled pull cancelled from another thread while four threads read
 * the registry through the same context. */
static void test_threads_and_cancel_all(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    ss_server *ss = ss_start();
    struct ss_route stall = ss_route_file("/stall.gguf", g_gguf, g_gguf_len);
    stall.stall_at = 4096;
    stall.stall_times = 100;
    ss_route_add(ss, &stall);
    add_tiny("tiny");
    genai *g = new_ctx();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stall.gguf", ss_port(ss));
    puller pl = {.g = g, .url = url, .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t pt, rt[4];
    reader rd[4];
    assert_int_equal(pthread_create(&pt, NULL, pull_thread, &pl), 0);
    for (int i = 0; i < 4; i++) {
        rd[i] = (reader){g, 0};
        assert_int_equal(pthread_create(&rt[i], NULL, read_thread, &rd[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(rt[i], NULL);
        assert_int_equal(rd[i].failures, 0);
    }
    assert_true(tu_wait(puller_started, &pl, 10000));
    assert_int_equal(genai_model_pull_cancel_all(g), 1);
    pthread_join(pt, NULL);
    assert_int_equal(pl.rc, GENAI_ECANCELLED);
    assert_int_equal(genai_model_pull_cancel_all(g), 0);
    genai_free(g);
    ss_stop(ss);
    assert_int_equal(tu_fd_count(), fds);
}

int main(void)
{
    snprintf(g_tiny, sizeof(g_tiny), "%s/gguf/corpus/valid_tiny_llama.gguf",
             getenv("GENAI_TEST_DATA"));
    g_gguf = tu_read(g_tiny, &g_gguf_len);
    if (g_gguf == NULL || store_sha256_file(g_tiny, g_sha, NULL, NULL) < 0) {
        fprintf(stderr, "cannot read %s\n", g_tiny);
        return 1;
    }
    /* libuv keeps a process-wide pipe pair from its first loop on; create
     * it before the fd counts. */
    genai *warm = NULL;
    char home[96];
    if (tu_mkdtemp(home, sizeof(home), "api-warm") == 0) {
        setenv("GENAI_HOME", home, 1);
        if (genai_new(NULL, &warm, NULL) == 0)
            genai_free(warm);
        tu_rm_rf(home);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_and_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_calls_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_components, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_and_cancel_all, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_gguf);
    return rc;
}
