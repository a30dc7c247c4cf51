/*
 * orch_harness.c - shared set-up for the orchestrator's process tests (see
 * orch_harness.h).
 */
#include "cmocka_all.h"

#include "orch_harness.h"

#include "../proc/proc_test_util.h"
#include "core/alloc.h"
#include "core/log.h"
#include "gguf/writer.h"
#include "llm/discover.h"
#include "sys/fakegpu.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const switches[] = {
    "FAKE_LLAMA_CRASH_AT_START", "FAKE_LLAMA_CRASH_AFTER_TOKENS", "FAKE_LLAMA_CRASH_HOW",
    "FAKE_LLAMA_LOAD_MS",        "FAKE_LLAMA_HANG_ON_SIGTERM",    "FAKE_LLAMA_BIND_FAIL",
    "FAKE_LLAMA_PROPS_ALIAS",    "FAKE_LLAMA_READY_FILE",         "FAKE_LLAMA_PORT_FILE",
    "FAKE_LLAMA_GPU_HOLD_MS",    "FAKE_LLAMA_TOKEN_MS",           "FAKE_LLAMA_EOS_AFTER",
    "FAKE_SD_STEP_MS",           "FAKE_SD_CRASH_AT_STEP",         "FAKE_SD_CRASH_SIGNAL",
    "FAKE_SD_CRASH_EXIT",        "FAKE_SD_HANG_AT_STEP",          "FAKE_SD_GPU_HOLD_MS",
    "FAKE_SD_PID_FILE",          "FAKE_SD_IGNORE_TERM",           "FAKE_SD_VERSION",
};

void oh_setup(oh *h)
{
    memset(h, 0, sizeof(*h));
    log_init_from_env();
    ptu_warm_up();
    const char *build = getenv("GENAI_BUILD_DIR");
    assert_non_null(build);
    char path[600];
    snprintf(path, sizeof(path), "%s/tests/doubles/llama/fake-llama-server", build);
    assert_int_equal(access(path, X_OK), 0);
    setenv(LLM_SERVER_ENV, path, 1);
    snprintf(path, sizeof(path), "%s/tests/doubles/sd/fake-sd-cli", build);
    assert_int_equal(access(path, X_OK), 0);
    setenv("GENAI_SD_CLI", path, 1);
    for (size_t i = 0; i < sizeof(switches) / sizeof(switches[0]); i++)
        unsetenv(switches[i]);
    /* The double maps and reads the model: a tiny fraction keeps RSS small. */
    setenv("FAKE_LLAMA_MEM_SCALE", "0.001", 1);
    snprintf(h->dir, sizeof(h->dir), "/tmp/genai-orch-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    h->fds_before = ptu_count_fds();
}

void oh_fake_gpu(oh *h, uint64_t total)
{
    snprintf(h->gpu, sizeof(h->gpu), "%s/gpu.json", h->dir);
    FILE *f = fopen(h->gpu, "we");
    assert_non_null(f);
    fprintf(f,
            "{\"devices\":[{\"name\":\"Fake GPU 8GB\",\"uuid\":\"GPU-fake-0\","
            "\"total_bytes\":%llu}]}\n",
            (unsigned long long)total);
    fclose(f);
    setenv("GENAI_FAKE_GPU", h->gpu, 1);
}

static void add_u32(gguf_writer *w, const char *k, uint32_t v)
{
    assert_int_equal(gguf_writer_add_u32(w, k, v), 0);
}

static void add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, uint64_t a, uint64_t b)
{
    uint64_t ne[2] = {a, b};
    uint32_t type = n_dims == 1 ? GGUF_DT_F32 : GGUF_DT_Q4_K;
    assert_int_equal(gguf_writer_add_tensor(w, name, type, n_dims, ne, NULL), 0);
}

void oh_write_llm(oh *h, uint32_t n_ff)
{
    const uint32_t E = 5120, H = 40, HKV = 8, V = 65536, CTX = 4096;
    snprintf(h->llm_model, sizeof(h->llm_model), "%s/llm-12b.gguf", h->dir);
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_int_equal(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    add_u32(w, "llama.block_count", OH_N_LAYER);
    add_u32(w, "llama.context_length", CTX);
    add_u32(w, "llama.embedding_length", E);
    add_u32(w, "llama.feed_forward_length", n_ff);
    add_u32(w, "llama.attention.head_count", H);
    add_u32(w, "llama.attention.head_count_kv", HKV);
    add_u32(w, "llama.vocab_size", V);
    add_tensor(w, "token_embd.weight", 2, E, V);
    char n[64];
    for (uint32_t l = 0; l < OH_N_LAYER; l++) {
        static const struct {
            const char *name;
            int dims;
            int a, b; /* 0: E, 1: E/H*HKV (KV width), 2: n_ff */
        } t[] = {{"attn_norm.weight", 1, 0, 0},   {"attn_q.weight", 2, 0, 0},
                 {"attn_k.weight", 2, 0, 1},      {"attn_v.weight", 2, 0, 1},
                 {"attn_output.weight", 2, 0, 0}, {"ffn_norm.weight", 1, 0, 0},
                 {"ffn_gate.weight", 2, 0, 2},    {"ffn_up.weight", 2, 0, 2},
                 {"ffn_down.weight", 2, 2, 0}};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            uint64_t dim[3] = {E, (uint64_t)E / H * HKV, n_ff};
            snprintf(n, sizeof(n), "blk.%u.%s", l, t[i].name);
            add_tensor(w, n, (uint32_t)t[i].dims, dim[t[i].a], dim[t[i].b]);
        }
    }
    add_tensor(w, "output_norm.weight", 1, E, 0);
    add_tensor(w, "output.weight", 2, E, V);
    genai_error e;
    assert_int_equal(gguf_writer_write(w, h->llm_model, &e), 0);
    h->llm_file_bytes = gguf_writer_size(w);
    gguf_writer_free(w);
    char v[32];
    setenv("FAKE_LLAMA_N_LAYER", "48", 1);
    setenv("FAKE_LLAMA_N_EMBD", "5120", 1);
    setenv("FAKE_LLAMA_N_HEAD", "40", 1);
    setenv("FAKE_LLAMA_N_HEAD_KV", "8", 1);
    setenv("FAKE_LLAMA_HEAD_DIM", "128", 1);
    snprintf(v, sizeof(v), "%u", n_ff);
    setenv("FAKE_LLAMA_N_FF", v, 1);
    setenv("FAKE_LLAMA_N_VOCAB", "65536", 1);
    setenv("FAKE_LLAMA_N_CTX_TRAIN", "4096", 1);
}

static void write_sd(const char *path, double te_mb, double unet_mb, double vae_mb)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fprintf(f,
            "fake-sd-model 1\n# SDXL-like, 2.9 GB (orchestrator tests)\nversion=SDXL\n"
            "te_mb=%.2f\nte_tensors=713\nunet_mb=%.2f\nunet_tensors=1680\n"
            "vae_mb=159.56\nvae_decoder_mb=%.2f\nvae_tensors=138\nclip_compute_mb=9.50\n"
            "unet_heads=10\nunet_attn_div=2\nunet_linear_bpp=140\nunet_fa_bpp=160\n"
            "unet_const_mb=30\nvae_bpp=3328\nvae_ch=128\nsplit_ok=1\n",
            te_mb, unet_mb, vae_mb);
    fclose(f);
}

void oh_write_sd(oh *h)
{
    snprintf(h->sd_model, sizeof(h->sd_model), "%s/sdxl.fake.safetensors", h->dir);
    snprintf(h->sd_bad_model, sizeof(h->sd_bad_model), "%s/sdxl-big.fake.safetensors", h->dir);
    snprintf(h->sd_small_model, sizeof(h->sd_small_model), "%s/sd-small.fake.safetensors", h->dir);
    write_sd(h->sd_model, 1200.0, 1600.0, 94.57);
    write_sd(h->sd_bad_model, 1200.0, 9000.0, 94.57);
    write_sd(h->sd_small_model, 600.0, 300.0, 50.0);
    /* What genai believes (the double's coefficients in the planner's
     * units: per latent pixel = 64 image pixels). */
    memset(&h->sd_sizes, 0, sizeof(h->sd_sizes));
    h->sd_sizes.diffusion_bytes = 1600 * PLAN_MIB;
    h->sd_sizes.text_encoder_bytes = 1200 * PLAN_MIB;
    h->sd_sizes.vae_bytes = 95 * PLAN_MIB;
    h->sd_sizes.attn_heads = 10;
    h->sd_sizes.unet_linear = 64 * 140;
    h->sd_sizes.unet_fa_linear = 64 * 160;
    h->sd_sizes.vae_per_pixel = 3328;
    h->sd_sizes.te_compute = 10 * PLAN_MIB;
}

int oh_size_hook(void *arg, const img_request *req, plan_sd_model *out, genai_error *err)
{
    (void)err;
    oh *h = arg;
    *out = h->sd_sizes;
    if (req->diffusion_model != NULL && strcmp(req->diffusion_model, h->sd_small_model) == 0) {
        out->text_encoder_bytes = 600 * PLAN_MIB;
        out->diffusion_bytes = 300 * PLAN_MIB;
        out->vae_bytes = 50 * PLAN_MIB;
    }
    return 0;
}

void oh_image_request(oh *h, img_request *r, int model)
{
    memset(r, 0, sizeof(*r));
    r->diffusion_model = model == OH_SD_BAD     ? h->sd_bad_model
                         : model == OH_SD_SMALL ? h->sd_small_model
                                                : h->sd_model;
    r->prompt = "a lighthouse at dusk";
    r->width = r->height = 512;
    r->steps = 4;
    r->has_seed = 1;
    r->seed = 42;
}

void oh_llm_config(oh *h, llm_rt_config *cfg)
{
    llm_rt_config_init(cfg);
    cfg->model = h->llm_model;
    cfg->model_id = "llm-12b";
    cfg->run_dir = h->dir;
    cfg->probe_min_ms = 10;
    cfg->stop_grace_ms = 1500;
    cfg->stop_term2_ms = 1000;
    cfg->watchdog_interval_ms = -1;
}

static void on_event(void *arg, orch *o, const orch_event *ev)
{
    (void)o;
    oh *h = arg;
    if (h->n_ev == h->cap_ev) {
        size_t cap = h->cap_ev ? h->cap_ev * 2 : 64;
        oh_event *v = mem_reallocarray(h->ev, cap, sizeof(*h->ev));
        assert_non_null(v);
        h->ev = v;
        h->cap_ev = cap;
    }
    oh_event *r = &h->ev[h->n_ev++];
    r->ev = *ev;
    snprintf(r->text, sizeof(r->text), "%s", ev->reason);
    r->ev.reason = NULL;
    r->at_ms = ptu_now_ms();
    if (ev->pid > 0)
        oh_note_pid(h, ev->pid);
    if (h->hook != NULL)
        h->hook(h, ev);
}

static void on_progress(void *arg, img_runner *r, const img_job *job)
{
    oh *h = arg;
    const img_run_info *info = img_runner_info(r, job->id);
    if (info != NULL && info->pid > 0)
        oh_note_pid(h, info->pid);
}

void oh_opts(oh *h, orch_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->image.size_model = oh_size_hook;
    o->image.size_arg = h;
    o->image.work_parent = h->dir;
    o->image.on_progress = on_progress;
    o->image.arg = h;
    o->image.stop_grace_ms = 500;
    o->image.stop_term2_ms = 500;
    o->min_residency_ms = -1;
    o->drain_timeout_ms = 5000;
    o->reclaim_timeout_ms = 10000;
    o->reload_timeout_ms = 10000;
    o->on_event = on_event;
    o->arg = h;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

void oh_start(oh *h, const orch_opts *opts)
{
    assert_int_equal(uv_loop_init(&h->uv), 0);
    assert_int_equal(uv_timer_init(&h->uv, &h->tick), 0);
    /* Wakes uv_run(ONCE) so deadlines are checked even when nothing happens. */
    assert_int_equal(uv_timer_start(&h->tick, on_tick, 10, 10), 0);
    genai_error e;
    genai_error_clear(&e);
    int rc = orch_new(&h->uv, opts, &h->o, &e);
    if (rc != 0)
        fail_msg("orch_new: %s", e.detail);
}

int oh_run_until(oh *h, int (*pred)(oh *h, void *arg), void *arg, int timeout_ms)
{
    int64_t end = ptu_now_ms() + timeout_ms;
    while (!pred(h, arg)) {
        if (ptu_now_ms() >= end)
            return -1;
        uv_run(&h->uv, UV_RUN_ONCE);
    }
    return 0;
}

static int llm_is(oh *h, void *arg)
{
    return orch_llm_status(h->o, NULL) == *(orch_llm_state *)arg;
}

int oh_wait_llm(oh *h, orch_llm_state st, int timeout_ms)
{
    return oh_run_until(h, llm_is, &st, timeout_ms);
}

typedef struct count_arg {
    orch_event_type t;
    size_t n;
} count_arg;

static int has_events(oh *h, void *arg)
{
    count_arg *c = arg;
    return oh_count(h, c->t) >= c->n;
}

int oh_wait_events(oh *h, orch_event_type t, size_t n, int timeout_ms)
{
    count_arg c = {t, n};
    return oh_run_until(h, has_events, &c, timeout_ms);
}

size_t oh_count(const oh *h, orch_event_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_ev; i++)
        n += h->ev[i].ev.type == t;
    return n;
}

const oh_event *oh_nth(const oh *h, orch_event_type t, size_t k)
{
    for (size_t i = 0; i < h->n_ev; i++)
        if (h->ev[i].ev.type == t && k-- == 0)
            return &h->ev[i];
    return NULL;
}

void oh_note_pid(oh *h, pid_t pid)
{
    for (size_t i = 0; i < h->n_pids; i++)
        if (h->pids[i] == pid)
            return;
    if (h->n_pids < sizeof(h->pids) / sizeof(h->pids[0]))
        h->pids[h->n_pids++] = pid;
}

uint64_t oh_gpu_bytes_of(oh *h, pid_t pid)
{
    fakegpu_state st;
    assert_int_equal(fakegpu_read(h->gpu, &st, NULL), 0);
    uint64_t held = 0;
    for (uint32_t i = 0; i < st.n_allocs; i++)
        if (st.allocs[i].pid == pid && st.allocs[i].released_at_ms == 0)
            held += st.allocs[i].bytes;
    fakegpu_state_free(&st);
    return held;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

void oh_done(oh *h)
{
    pid_t llm = h->o != NULL ? orch_llm_pid(h->o) : 0;
    if (llm > 0)
        oh_note_pid(h, llm);
    orch_free(h->o);
    h->o = NULL;
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->uv, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->uv), 0);
    for (size_t i = 0; i < h->n_pids; i++) {
        errno = 0;
        if (kill(h->pids[i], 0) == 0 || errno != ESRCH)
            fail_msg("child %ld is still there", (long)h->pids[i]);
    }
    assert_int_equal(ptu_count_fds(), h->fds_before);
    mem_free(h->ev);
    rm_tree(h->dir);
    unsetenv("GENAI_FAKE_GPU");
}
