/*
 * test_footprint_db.c - learned footprints kept in the registry
 * (src/store/footprint_db.c): rows in and out, the key mapping, corrupt rows
 * refused and ignored, and the whole path: a runtime records a footprint
 * against fake-llama-server for a registered model, and a new genai process
 * with a new table plans that model with the measurement (tier MEASURED).
 *
 * The "new process" is this binary run again with --plan MODEL: it opens the
 * registry (GENAI_HOME is inherited), starts a runtime on a fresh table and
 * prints the tier its plan used. Every test gets a fresh data folder.
 */
#include "cmocka_all.h"

#include "api/shapes.h"

#include "core/alloc.h"
#include "core/http_client.h"
#include "core/loop.h"
#include "gguf/writer.h"
#include "llm/discover.h"
#include "llm/runtime.h"
#include "proc/run.h"
#include "store/footprint_db.h"
#include "store/store.h"
#include "testutil/testutil.h"
#include "tiny_llama.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static char g_self[1024], g_fake[1024];

/* ---- fixtures -------------------------------------------------------------- */

typedef struct fixture {
    char *dir;   /* GENAI_HOME of the test */
    char *model; /* the tiny model, registered as "tiny" */
    store *st;
} fixture;

static void write_tiny(const char *path)
{
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    gguf_writer *w = NULL;
    genai_error e;
    assert_int_equal(mkmodel_build(&o, &w, &e), 0);
    assert_int_equal(gguf_writer_write(w, path, &e), 0);
    gguf_writer_free(w);
}

/* A fresh data folder with the tiny model registered as "tiny". */
static void fixture_up(fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->dir = tu_tmpdir("fpdb");
    setenv("GENAI_HOME", f->dir, 1);
    f->model = tu_path(f->dir, "tiny.gguf");
    write_tiny(f->model);
    genai_error e;
    assert_int_equal(store_open(&f->st, &e), 0);
    store_add_file file = {.role = "model", .path = f->model};
    int rc = store_add(f->st, "tiny", NULL, STORE_KIND_LLM, &file, 1, NULL, &e);
    if (rc != 0)
        print_message("store_add: %s\n", e.detail);
    assert_int_equal(rc, 0);
}

static void fixture_down(fixture *f)
{
    store_close(f->st);
    assert_int_equal(tu_rm_rf(f->dir), 0);
    mem_free(f->model);
    mem_free(f->dir);
    unsetenv("GENAI_FAKE_GPU");
}

/* The runtime's model identity for path on a machine without GPUs. */
static void model_key(const char *path, char *out, size_t n, char *suffix, size_t sn)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    snprintf(out, n, "%s size=%lld mtime=%lld dev=cpu", path, (long long)st.st_size,
             (long long)st.st_mtime);
    snprintf(suffix, sn, "mtime=%lld dev=cpu", (long long)st.st_mtime);
}

static void sample_demand(plan_demand *d)
{
    memset(d, 0, sizeof(*d));
    d->n_gpus = 2;
    d->gpu[0] = 3 * PLAN_GIB + 17;
    d->gpu[1] = 5 * PLAN_MIB;
    d->gpu_parts[0] = (plan_breakdown){1, 2, 3, 4, 5, 6, 7};
    d->gpu_parts[1] = (plan_breakdown){8, 9, 10, 11, 12, 13, 14};
    d->host_parts = (plan_breakdown){15, 16, 17, 18, 19, 20, 21};
    d->host_anon = 700 * PLAN_MIB;
    d->host_file = 14 * PLAN_MIB;
    d->host_growth = 300 * PLAN_MIB;
    d->tier = PLAN_TIER_MEASURED;
    plan_demand_set_note(d, "measured pid 42 \"quoted\"");
    snprintf(d->build, sizeof(d->build), "b11669-Debian");
}

/* ---- rows ------------------------------------------------------------------ */

static void test_row_roundtrip(void **state)
{
    (void)state;
    plan_demand d, back;
    sample_demand(&d);
    char *json = NULL;
    assert_int_equal(store_fpdb_to_json(&d, &json, NULL), 0);
    store_footprint row = {.model_id = "m",
                           .config_key = "k",
                           .device_bytes_json = json,
                           .host_anon = d.host_anon,
                           .host_file = d.host_file};
    genai_error e;
    assert_int_equal(store_fpdb_from_row(&row, &back, &e), 0);
    assert_int_equal(back.n_gpus, 2);
    assert_memory_equal(back.gpu, d.gpu, sizeof(d.gpu));
    assert_memory_equal(back.gpu_parts, d.gpu_parts, sizeof(d.gpu_parts));
    assert_memory_equal(&back.host_parts, &d.host_parts, sizeof(d.host_parts));
    assert_int_equal(back.host_anon, d.host_anon);
    assert_int_equal(back.host_file, d.host_file);
    assert_int_equal(back.host_growth, d.host_growth);
    assert_int_equal(back.tier, PLAN_TIER_MEASURED);
    assert_string_equal(back.note, d.note);
    mem_free(json);
}

static void test_corrupt_rows_refused(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        uint64_t anon;
        const char *says;
    } bad[] = {
        {"{\"format\":1,\"gpu\":[", 100, "not JSON"},
        {"[]", 100, "not a format 1 object"},
        {"{\"format\":2,\"gpu\":[],\"gpu_parts\":[]}", 100, "not a format 1 object"},
        {"{\"format\":1,\"gpu\":[-5],\"gpu_parts\":[{}]}", 100, "gpu[0] is not a size"},
        {"{\"format\":1,\"gpu\":[1,1,1,1,1,1,1,1,1],\"gpu_parts\":[{},{},{},{},{},{},{},{},{}]}",
         100, "at most 8"},
        {"{\"format\":1,\"gpu\":[1]}", 100, "same length"},
        {"{\"format\":1,\"gpu\":[1],\"gpu_parts\":[{\"weights\":\"1\"}]}", 100,
         "gpu_parts[0]: weights"},
        {"{\"format\":1,\"gpu\":[],\"gpu_parts\":[],\"host_parts\":{\"weights\":0,\"kv\":0,"
         "\"compute\":0,\"output\":0,\"prompt_cache\":0,\"runtime\":0,\"driver\":0},"
         "\"host_growth\":101}",
         100, "host_growth"},
        {"{\"format\":1,\"gpu\":[],\"gpu_parts\":[],\"host_parts\":{\"weights\":0,\"kv\":0,"
         "\"compute\":0,\"output\":0,\"prompt_cache\":0,\"runtime\":0,\"driver\":0},"
         "\"host_growth\":0}",
         UINT64_MAX, "host bytes out of range"},
        {"{\"format\":1,\"format\":1}", 100, "not JSON"},
        {"{\"format\":1,\"gpu\":[1125899906842625],\"gpu_parts\":[{}]}", 100, "gpu[0]"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_footprint row = {.model_id = "tiny",
                               .config_key = "ngl=0",
                               .device_bytes_json = (char *)bad[i].json,
                               .host_anon = bad[i].anon,
                               .host_file = 1};
        plan_demand out;
        memset(&out, 0xAB, sizeof(out));
        genai_error e;
        int rc = store_fpdb_from_row(&row, &out, &e);
        if (rc != GENAI_ECORRUPT || strstr(e.detail, bad[i].says) == NULL)
            print_message("row %zu: rc %d, %s\n", i, rc, e.detail);
        assert_int_equal(rc, GENAI_ECORRUPT);
        assert_non_null(strstr(e.detail, "footprint row of model 'tiny' [ngl=0] refused"));
        assert_non_null(strstr(e.detail, bad[i].says));
        assert_int_equal(out.n_gpus, 0xABABABABu); /* untouched */
    }
    /* A build name longer than a demand holds. */
    char longbuild[PLAN_BUILD_MAX + 8];
    memset(longbuild, 'b', sizeof(longbuild) - 1);
    longbuild[sizeof(longbuild) - 1] = '\0';
    store_footprint row = {.model_id = "tiny",
                           .config_key = "ngl=0",
                           .device_bytes_json = (char *)bad[8].json, /* valid at 100 B */
                           .host_anon = 100,
                           .host_file = 1,
                           .runtime_build = longbuild};
    plan_demand out;
    genai_error e;
    assert_int_equal(store_fpdb_from_row(&row, &out, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "runtime build longer than"));
}

/* ---- the key mapping and the hooks ----------------------------------------- */

static void test_map_keys(void **state)
{
    (void)state;
    fixture f;
    fixture_up(&f);
    plan_footprints *fp = plan_footprints_new();
    assert_non_null(fp);
    store_fpdb *b;
    genai_error e;
    assert_int_equal(store_fpdb_open(NULL, fp, &b, &e), 0);
    assert_ptr_equal(store_fpdb_table(b), fp);

    char mk[1200], suffix[128], id[64], key[STORE_FPDB_KEY_MAX], want[600];
    model_key(f.model, mk, sizeof(mk), suffix, sizeof(suffix));
    assert_int_equal(store_fpdb_map(b, mk, "ngl=0 c=512", id, sizeof(id), key, sizeof(key), &e), 0);
    assert_string_equal(id, "tiny");
    snprintf(want, sizeof(want), "ngl=0 c=512 %s", suffix);
    assert_string_equal(key, want);

    /* the same file through a symlink and a relative path maps to the same model */
    char *link = tu_path(f.dir, "with size= in name.gguf");
    assert_int_equal(symlink(f.model, link), 0);
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f.dir), 0);
    struct stat st;
    assert_int_equal(stat(f.model, &st), 0);
    static const char *const names[] = {"tiny.gguf", "with size= in name.gguf"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(mk, sizeof(mk), "%s size=%lld mtime=%lld dev=cpu", names[i], (long long)st.st_size,
                 (long long)st.st_mtime);
        id[0] = '\0';
        assert_int_equal(store_fpdb_map(b, mk, "c=1", id, sizeof(id), key, sizeof(key), &e), 0);
        assert_string_equal(id, "tiny");
    }
    assert_int_equal(chdir(cwd), 0);

    /* not in the runtime's form; not a registered model; changed since */
    assert_int_equal(store_fpdb_map(b, "/x/y.gguf", "c=1", id, sizeof(id), key, sizeof(key), &e),
                     GENAI_EBAD_ARG);
    char *other = tu_path(f.dir, "other.gguf");
    write_tiny(other);
    model_key(other, mk, sizeof(mk), suffix, sizeof(suffix));
    assert_int_equal(store_fpdb_map(b, mk, "c=1", id, sizeof(id), key, sizeof(key), &e),
                     GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "is not a registered LLM"));
    /* a record for an unregistered model stays in memory, not an error */
    plan_demand d, got;
    sample_demand(&d);
    assert_int_equal(plan_footprints_record(fp, mk, "c=1", &d, &e), 0);
    assert_int_equal(store_fpdb_last_error(b)->code, 0);
    FILE *fh = fopen(f.model, "ae");
    assert_non_null(fh);
    fputs("x", fh);
    fclose(fh);
    model_key(f.model, mk, sizeof(mk), suffix, sizeof(suffix));
    assert_int_equal(store_fpdb_map(b, mk, "c=1", id, sizeof(id), key, sizeof(key), &e),
                     GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "changed since it was registered as 'tiny'"));
    assert_int_equal(plan_footprints_lookup(fp, mk, "c=1", &got), 0);

    store_fpdb_close(b);
    plan_footprints_free(fp);
    assert_int_equal(unlink(link), 0);
    mem_free(link);
    mem_free(other);
    fixture_down(&f);
}

/* Records through one table, finds it through another (as two processes
 * would); a corrupt row is refused with a clear error and ignored. */
static void test_record_then_lookup_and_corrupt(void **state)
{
    (void)state;
    fixture f;
    fixture_up(&f);
    char mk[1200], suffix[128];
    model_key(f.model, mk, sizeof(mk), suffix, sizeof(suffix));
    plan_demand d, got;
    sample_demand(&d);
    genai_error e;

    plan_footprints *one = plan_footprints_new();
    store_fpdb *b1;
    assert_int_equal(store_fpdb_open(NULL, one, &b1, &e), 0);
    assert_int_equal(plan_footprints_record(one, mk, "ngl=0 c=512", &d, &e), 0);
    assert_int_equal(store_fpdb_last_error(b1)->code, 0);
    store_fpdb_close(b1);
    plan_footprints_free(one);

    /* the row as the registry holds it */
    char key[600];
    snprintf(key, sizeof(key), "ngl=0 c=512 %s", suffix);
    store_footprint row;
    assert_int_equal(store_db_get_footprint(store_registry(f.st), "tiny", key, &row, &e), 0);
    assert_int_equal(row.host_anon, d.host_anon);
    assert_non_null(strstr(row.device_bytes_json, "\"format\":1"));
    assert_string_equal(row.runtime_build, "b11669-Debian"); /* which build was measured */
    store_footprint_free(&row);

    store_fpdb *b2;
    assert_int_equal(store_fpdb_open(NULL, NULL, &b2, &e), 0);
    plan_footprints *two = store_fpdb_table(b2);
    assert_int_equal(plan_footprints_count(two), 0);
    assert_int_equal(plan_footprints_lookup(two, mk, "ngl=0 c=512", &got), 1);
    assert_int_equal(got.tier, PLAN_TIER_MEASURED);
    assert_int_equal(got.gpu[0], d.gpu[0]);
    assert_int_equal(got.host_growth, d.host_growth);
    assert_string_equal(got.build, "b11669-Debian");
    assert_int_equal(plan_footprints_count(two), 1); /* cached */
    assert_int_equal(plan_footprints_lookup(two, mk, "ngl=0 c=1024", &got), 0);
    store_fpdb_close(b2);

    /* corrupt the row: refused, ignored, the reason kept */
    store_footprint badrow = {.model_id = "tiny",
                              .config_key = key,
                              .device_bytes_json = "{\"format\":1,\"gpu\":[\"lots\"]}",
                              .host_anon = 1,
                              .host_file = 1};
    assert_int_equal(store_db_put_footprint(store_registry(f.st), &badrow, &e), 0);
    /* genai show --json and GET /api/models/{id} list it as refused */
    store_model sm;
    assert_int_equal(store_db_get_model(store_registry(f.st), "tiny", &sm, &e), 0);
    json_t *detail = NULL;
    assert_int_equal(api_model_detail_json(store_registry(f.st), &sm, &detail, &e), 0);
    json_t *fps = json_object_get(detail, "footprints");
    assert_int_equal(json_array_size(fps), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(fps, 0), "refused")),
                           "same length"));
    json_decref(detail);
    assert_int_equal(store_fpdb_open(NULL, NULL, &b2, &e), 0);
    got.n_gpus = 77;
    assert_int_equal(plan_footprints_lookup(store_fpdb_table(b2), mk, "ngl=0 c=512", &got), 0);
    assert_int_equal(got.n_gpus, 77);
    const genai_error *why = store_fpdb_last_error(b2);
    assert_int_equal(why->code, GENAI_ECORRUPT);
    assert_non_null(strstr(why->detail, "footprint row of model 'tiny'"));
    assert_non_null(strstr(why->detail, "same length"));
    /* a new measurement replaces the corrupt row */
    assert_int_equal(plan_footprints_record(store_fpdb_table(b2), mk, "ngl=0 c=512", &d, &e), 0);
    store_fpdb_close(b2);
    assert_int_equal(store_fpdb_open(NULL, NULL, &b2, &e), 0);
    assert_int_equal(plan_footprints_lookup(store_fpdb_table(b2), mk, "ngl=0 c=512", &got), 1);
    assert_int_equal(got.gpu[1], d.gpu[1]);
    store_fpdb_close(b2);
    /* ... and the detail shows the measurement: build, host and GPU bytes */
    assert_int_equal(api_model_detail_json(store_registry(f.st), &sm, &detail, &e), 0);
    json_t *fp0 = json_array_get(json_object_get(detail, "footprints"), 0);
    assert_string_equal(json_string_value(json_object_get(fp0, "config")), key);
    assert_string_equal(json_string_value(json_object_get(fp0, "runtime_build")), "b11669-Debian");
    assert_int_equal(json_integer_value(json_object_get(fp0, "host_anon_bytes")), d.host_anon);
    assert_int_equal(json_integer_value(json_object_get(fp0, "host_file_bytes")), d.host_file);
    json_t *gb = json_object_get(fp0, "gpu_bytes");
    assert_int_equal(json_array_size(gb), 2);
    assert_int_equal(json_integer_value(json_array_get(gb, 0)), d.gpu[0]);
    assert_true(json_integer_value(json_object_get(fp0, "measured_at")) > 0);
    json_decref(detail);
    store_model_free(&sm);

    /* removing the model removes its footprints */
    assert_int_equal(store_remove(f.st, "tiny", NULL, &e), 0);
    assert_int_equal(store_db_get_footprint(store_registry(f.st), "tiny", key, &row, &e),
                     GENAI_ENOT_FOUND);
    fixture_down(&f);
}

/* ---- the runtime, across processes ------------------------------------------ */

typedef struct rtx {
    loop *l;
    llm_runtime *rt;
    plan_footprints *fp;
    llm_rt_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, failed;
    int start_rc;
    genai_error err;
    llm_rt_plan plan;
    plan_demand measured;
    int have_measured;
    char model_key[PLAN_KEY_MAX], config_key[PLAN_KEY_MAX];
    pid_t pid;
} rtx;

static void on_event(void *arg, llm_runtime *rt, const llm_rt_event *ev)
{
    (void)rt;
    rtx *x = arg;
    pthread_mutex_lock(&x->mu);
    x->ready += ev->state == LLM_RT_READY;
    x->failed += ev->state == LLM_RT_FAILED;
    if (ev->pid > 0)
        x->pid = ev->pid;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void do_start(loop *l, void *arg, loop_completion *c)
{
    rtx *x = arg;
    int rc = llm_runtime_new(loop_uv(l), &x->cfg, x->fp, on_event, x, &x->rt, &x->err);
    if (rc == 0)
        rc = llm_runtime_start(x->rt, &x->err);
    if (x->rt != NULL && llm_runtime_plan(x->rt) != NULL)
        x->plan = *llm_runtime_plan(x->rt);
    loop_complete(c, rc);
}

static void do_query(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    rtx *x = arg;
    x->have_measured = llm_runtime_measured(x->rt, &x->measured);
    snprintf(x->model_key, sizeof(x->model_key), "%s", llm_runtime_model_key(x->rt));
    snprintf(x->config_key, sizeof(x->config_key), "%s", llm_runtime_config_key(x->rt));
    loop_complete(c, 0);
}

static void do_free(loop *l, void *arg, loop_completion *c)
{
    (void)l;
    rtx *x = arg;
    llm_runtime_free(x->rt); /* SIGKILLs and reaps a running child */
    x->rt = NULL;
    loop_complete(c, 0);
}

static void rtx_init(rtx *x, const char *model, plan_footprints *fp)
{
    memset(x, 0, sizeof(*x));
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    llm_rt_config_init(&x->cfg);
    x->cfg.model = model;
    x->cfg.model_id = "tiny";
    x->cfg.server_path = g_fake;
    x->cfg.probe_min_ms = 10;
    x->fp = fp;
}

/* 1 once READY was reported, 0 at the deadline or on FAILED. */
static int rtx_wait_ready(rtx *x, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&x->mu);
    while (x->ready == 0 && x->failed == 0)
        if (pthread_cond_timedwait(&x->cv, &x->mu, &dl) == ETIMEDOUT)
            break;
    int ok = x->ready > 0;
    pthread_mutex_unlock(&x->mu);
    return ok;
}

static void rtx_destroy(rtx *x)
{
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
}

/* The child: a new genai process planning the model with a fresh table
 * backed by the registry. Prints "tier=NAME gpu0=N" and the bridge's last
 * error. */
static int plan_child(const char *model)
{
    genai_error e;
    store_fpdb *b;
    if (store_fpdb_open(NULL, NULL, &b, &e) < 0) {
        fprintf(stderr, "registry: %s\n", e.detail);
        return 3;
    }
    rtx x;
    rtx_init(&x, model, store_fpdb_table(b));
    if (loop_start(&x.l, &e) < 0)
        return 3;
    int rc = loop_call_wait(x.l, do_start, &x);
    if (rc == 0)
        printf("tier=%s gpu0=%llu\n", plan_tier_name(x.plan.demand.tier),
               (unsigned long long)x.plan.demand.gpu[0]);
    else
        printf("start failed: %s\n", x.err.detail);
    printf("bridge: %d %s\n", store_fpdb_last_error(b)->code, store_fpdb_last_error(b)->detail);
    loop_call_wait(x.l, do_free, &x);
    loop_stop(x.l);
    rtx_destroy(&x);
    store_fpdb_close(b);
    return rc == 0 ? 0 : 4;
}

static void run_child(const char *model, proc_capture *out)
{
    const char *const argv[] = {g_self, "--plan", model, NULL};
    genai_error e;
    assert_int_equal(proc_run_capture(argv, 60000, 64 * 1024, out, &e), 0);
    if (!out->exited || out->exit_code != 0)
        print_message("child: %s\n%s\n", out->out, out->err);
    assert_true(out->exited);
    assert_int_equal(out->exit_code, 0);
}

static void test_restart_plans_measured(void **state)
{
    (void)state;
    int fds = tu_fd_count();
    fixture f;
    fixture_up(&f);
    char *gpu = tu_path(f.dir, "gpu.json");
    static const char dev[] =
        "{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"total_bytes\":8589934592}]}\n";
    assert_int_equal(tu_write(gpu, dev, sizeof(dev) - 1), 0);
    setenv("GENAI_FAKE_GPU", gpu, 1);

    /* First genai: no footprint yet, so the estimate; READY records one. */
    genai_error e;
    store_fpdb *b;
    assert_int_equal(store_fpdb_open(NULL, NULL, &b, &e), 0);
    rtx x;
    rtx_init(&x, f.model, store_fpdb_table(b));
    assert_int_equal(loop_start(&x.l, &e), 0);
    int rc = loop_call_wait(x.l, do_start, &x);
    if (rc != 0)
        print_message("start: %s\n", x.err.detail);
    assert_int_equal(rc, 0);
    assert_int_equal(x.plan.demand.tier, PLAN_TIER_ESTIMATE);
    assert_true(rtx_wait_ready(&x, 20000));
    loop_call_wait(x.l, do_query, &x);
    assert_true(x.have_measured);
    assert_true(x.measured.gpu[0] > 0);
    assert_int_equal(store_fpdb_last_error(b)->code, 0);
    pid_t pid = x.pid;
    loop_call_wait(x.l, do_free, &x);
    loop_stop(x.l);
    rtx_destroy(&x);
    store_fpdb_close(b);
    assert_true(tu_wait_pid_gone(pid, 5000));

    /* Second genai, another process and table: the measurement plans it. */
    proc_capture out;
    run_child(f.model, &out);
    char want[128];
    snprintf(want, sizeof(want), "tier=measured gpu0=%llu\n",
             (unsigned long long)x.measured.gpu[0]);
    assert_non_null(strstr(out.out, want));
    assert_non_null(strstr(out.out, "bridge: 0"));
    proc_capture_free(&out);

    /* The row corrupted: the next genai refuses it, says so, and estimates. */
    char id[64], key[STORE_FPDB_KEY_MAX];
    assert_int_equal(store_fpdb_open(NULL, NULL, &b, &e), 0);
    assert_int_equal(
        store_fpdb_map(b, x.model_key, x.config_key, id, sizeof(id), key, sizeof(key), &e), 0);
    store_fpdb_close(b);
    assert_string_equal(id, "tiny");
    assert_non_null(strstr(key, "dev=Fake GPU 8GB"));
    /* The row names the build that was measured: the double's build_info. */
    store_footprint got;
    assert_int_equal(store_db_get_footprint(store_registry(f.st), id, key, &got, &e), 0);
    assert_true(x.measured.build[0] == 'b');
    assert_string_equal(got.runtime_build, x.measured.build);
    store_footprint_free(&got);
    store_footprint row = {.model_id = id,
                           .config_key = key,
                           .device_bytes_json = "{\"format\":1,",
                           .host_anon = 1,
                           .host_file = 1};
    assert_int_equal(store_db_put_footprint(store_registry(f.st), &row, &e), 0);
    run_child(f.model, &out);
    assert_non_null(strstr(out.out, "tier=estimate"));
    snprintf(want, sizeof(want), "bridge: %d footprint row of model 'tiny'", GENAI_ECORRUPT);
    assert_non_null(strstr(out.out, want));
    assert_non_null(strstr(out.out, "are not JSON"));
    proc_capture_free(&out);
    fixture_down(&f);
    mem_free(gpu);
    assert_int_equal(tu_fd_count(), fds);
}

/* ---- main -------------------------------------------------------------------- */

/* What libuv and curl keep open for the whole process once used (libuv's
 * signal pipe, curl's global state), opened before any fd count is taken. */
static void warm_up(void)
{
    uv_loop_t uv;
    uv_signal_t sig;
    http_client *c = NULL;
    uv_loop_init(&uv);
    uv_signal_init(&uv, &sig);
    uv_close((uv_handle_t *)&sig, NULL);
    http_client_new(&uv, &c, NULL);
    http_client_free(c);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_loop_close(&uv);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--plan") == 0)
        return plan_child(argv[2]);
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (n <= 0)
        return 1;
    g_self[n] = '\0';
    const char *bdir = getenv("GENAI_BUILD_DIR");
    snprintf(g_fake, sizeof(g_fake), "%s/tests/doubles/llama/fake-llama-server",
             bdir != NULL ? bdir : ".");
    setenv(LLM_SERVER_ENV, g_fake, 1);
    warm_up();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_roundtrip),
        cmocka_unit_test(test_corrupt_rows_refused),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_record_then_lookup_and_corrupt),
        cmocka_unit_test(test_restart_plans_measured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
