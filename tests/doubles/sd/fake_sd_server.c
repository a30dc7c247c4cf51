/*
 * fake_sd_server.c - a test double of stable-diffusion.cpp's sd-server
 * (master-827), following contracts/stable-diffusion-cpp.md §8 where genai
 * looks:
 *   - start: arguments as sd-cli's context and generation options plus
 *     --listen-ip / --listen-port; the fake model file of the sd-cli double
 *     (docs/sd-double.md); "new_sd_ctx_t failed" as an [ERROR] line and exit
 *     1 when the model cannot be read; the params line; "listening on:
 *     http://IP:PORT" printed BEFORE the bind, and a failed bind ends the
 *     program with status 0 and no error line (§8.1);
 *   - readiness: GET /sdcpp/v1/capabilities (model.path, limits, features,
 *     defaults from the command line);
 *   - the native job API: POST /sdcpp/v1/img_gen -> 202 stub, GET
 *     /sdcpp/v1/jobs/{id}, POST /sdcpp/v1/jobs/{id}/cancel (queued: 200
 *     cancelled; generating: 409; unknown: 404; expired: 410), 400 for an
 *     empty body or invalid JSON, 429 beyond 64 pending jobs; replies with
 *     sorted keys, as nlohmann::json writes them (§8.2-8.5);
 *   - one worker thread, FIFO; each job prints sd-cli's stage lines and
 *     progress bars on stdout, weight-loading '#' bars on the first job only
 *     (weights stay resident), and its result is base64 PNGs;
 *   - the listening socket has SO_REUSEPORT, as cpp-httplib sets it: a bind
 *     conflict only with a socket that lacks it;
 *   - no signal handler: SIGTERM kills it (143) and queued jobs vanish.
 *
 * Switches (environment, as the sd-cli double): FAKE_SD_VERSION,
 * FAKE_SD_STEP_MS, FAKE_SD_CRASH_AT_STEP (+ FAKE_SD_CRASH_SIGNAL /
 * FAKE_SD_CRASH_EXIT), FAKE_SD_HANG_AT_STEP (steps counted over the process's
 * life), FAKE_SD_PID_FILE, and FAKE_SD_JOB_KEEP_S (how long finished jobs are
 * kept, default 600, then 410 for as long again, then 404).
 * Not modelled: the fake GPU, the OpenAI and sdapi endpoints (404 here),
 * img2img inputs, LoRA.
 */
#include "sd_png_write.h"

#include "core/alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS 1024
#define MAX_PENDING 64 /* capabilities.limits.max_queue_size (OBS) */
#define MAX_BODY (1u << 20)

/* ---------------------------------------------------------------- logging */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void sdlog(int error, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sdlog(int error, const char *file, int line, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    FILE *out = error ? stderr : stdout;
    fprintf(out, "[%-5s] %s:%-4d - %s\n", error ? "ERROR" : "INFO", file, line, msg);
    fflush(out);
    pthread_mutex_unlock(&log_mu);
}

static void bar(int loading, int step, int steps, const char *speed)
{
    char cells[51];
    int current = (int)((long long)step * 50 / steps);
    for (int i = 0; i < 50; i++) {
        if (loading)
            cells[i] = i <= current ? '#' : ' ';
        else
            cells[i] = i < current ? '=' : (i == current ? '>' : ' ');
    }
    cells[50] = '\0';
    pthread_mutex_lock(&log_mu);
    printf("\r  |%s| %i/%i - %s\033[K%s", cells, step, steps, speed, step == steps ? "\n" : "");
    fflush(stdout);
    pthread_mutex_unlock(&log_mu);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return dflt;
    return strtol(v, NULL, 10);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ----------------------------------------------------------------- model */

struct model {
    char path[4096];
    char name[256];
    char stem[256];
    char version[64];
    double te_mb, unet_mb, vae_mb, total_mb;
    unsigned te_tensors, unet_tensors, vae_tensors;
};

/* The sd-cli double's fake model file: "fake-sd-model 1", then key=value. */
static int model_load(const char *path, struct model *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->path, sizeof(m->path), "%s", path);
    const char *slash = strrchr(path, '/');
    snprintf(m->name, sizeof(m->name), "%s", slash ? slash + 1 : path);
    snprintf(m->stem, sizeof(m->stem), "%s", m->name);
    char *dot = strrchr(m->stem, '.');
    if (dot != NULL)
        *dot = '\0';
    snprintf(m->version, sizeof(m->version), "SD 1.x");
    m->te_mb = 235.06, m->unet_mb = 19.85, m->vae_mb = 71.15;
    m->te_tensors = 196, m->unet_tensors = 686, m->vae_tensors = 140;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -ENOENT;
    char line[512];
    if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "fake-sd-model 1", 15) != 0) {
        fclose(f);
        return -EINVAL;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (line[0] == '#' || eq == NULL)
            continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        double d = strtod(v, NULL);
        if (strcmp(k, "version") == 0)
            snprintf(m->version, sizeof(m->version), "%s", v);
        else if (strcmp(k, "te_mb") == 0)
            m->te_mb = d;
        else if (strcmp(k, "unet_mb") == 0)
            m->unet_mb = d;
        else if (strcmp(k, "vae_mb") == 0)
            m->vae_mb = d;
        else if (strcmp(k, "total_mb") == 0)
            m->total_mb = d;
        else if (strcmp(k, "te_tensors") == 0)
            m->te_tensors = (unsigned)d;
        else if (strcmp(k, "unet_tensors") == 0)
            m->unet_tensors = (unsigned)d;
        else if (strcmp(k, "vae_tensors") == 0)
            m->vae_tensors = (unsigned)d;
    }
    fclose(f);
    return 0;
}

/* ------------------------------------------------------------------ jobs */

enum jstate { J_QUEUED, J_GENERATING, J_COMPLETED, J_FAILED, J_CANCELLED };
static const char *const jstate_name[] = {"queued", "generating", "completed", "failed",
                                          "cancelled"};

struct job {
    char id[40];
    enum jstate st;
    time_t created, started, completed;
    char *prompt;
    int width, height, steps, batch;
    long long seed;
    char **images; /* batch base64 strings once completed */
    int n_images;
    const char *err_code, *err_msg;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *jobs[MAX_JOBS];
    int n;
    unsigned counter;
    struct model model;
    int def_w, def_h, def_steps;
    long long def_seed;
    long keep_s;
    long overall_step; /* over the process's life, for the crash/hang switches */
    int loaded_te, loaded_unet, loaded_vae;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int pending_locked(void)
{
    int n = 0;
    for (int i = 0; i < g.n; i++)
        n += g.jobs[i]->st == J_QUEUED || g.jobs[i]->st == J_GENERATING;
    return n;
}

static int queue_position_locked(const struct job *j)
{
    if (j->st != J_QUEUED)
        return 0;
    int pos = 0;
    for (int i = 0; i < g.n; i++) {
        if (g.jobs[i]->st == J_QUEUED)
            pos++;
        if (g.jobs[i] == j)
            return pos;
    }
    return 0;
}

static json_t *time_or_null(time_t t)
{
    return t ? json_integer((json_int_t)t) : json_null();
}

static json_t *job_json_locked(const struct job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "kind", json_string("img_gen"));
    json_object_set_new(o, "status", json_string(jstate_name[j->st]));
    json_object_set_new(o, "created", json_integer((json_int_t)j->created));
    json_object_set_new(o, "started", time_or_null(j->started));
    json_object_set_new(o, "completed", time_or_null(j->completed));
    json_object_set_new(o, "queue_position", json_integer(queue_position_locked(j)));
    if (j->err_code != NULL)
        json_object_set_new(o, "error",
                            json_pack("{s:s, s:s}", "code", j->err_code, "message", j->err_msg));
    else
        json_object_set_new(o, "error", json_null());
    if (j->st == J_COMPLETED) {
        json_t *imgs = json_array();
        for (int i = 0; i < j->n_images; i++)
            json_array_append_new(imgs,
                                  json_pack("{s:s, s:i}", "b64_json", j->images[i], "index", i));
        json_object_set_new(o, "result",
                            json_pack("{s:o, s:s}", "images", imgs, "output_format", "png"));
    } else {
        json_object_set_new(o, "result", json_null());
    }
    return o;
}

static char *base64(const uint8_t *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = mem_alloc((n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static void load_bars(double mb, unsigned tensors)
{
    char speed[32];
    snprintf(speed, sizeof(speed), "%.2fMB/s", mb / 0.05);
    if (tensors > 3)
        bar(1, (int)(tensors / 3), (int)tensors, speed);
    bar(1, (int)tensors, (int)tensors, speed);
    sdlog(0, "model_loader.cpp", 1304,
          "loading tensors completed, taking 0.05s (read: 0.05s, memcpy: 0.00s, convert: 0.00s, "
          "copy_to_backend: 0.00s)");
}

static void step_switches(void)
{
    long k = ++g.overall_step;
    if (env_long("FAKE_SD_HANG_AT_STEP", -1) == k) {
        for (;;)
            pause();
    }
    if (env_long("FAKE_SD_CRASH_AT_STEP", -1) == k) {
        long code = env_long("FAKE_SD_CRASH_EXIT", -1);
        if (code >= 0)
            _exit((int)code);
        int sig = (int)env_long("FAKE_SD_CRASH_SIGNAL", SIGSEGV);
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

/* Runs one job on the worker thread (no lock held while "generating"). */
static void generate(struct job *j)
{
    long step_ms = env_long("FAKE_SD_STEP_MS", 0);
    sdlog(0, "stable-diffusion.cpp", 5628, "generate_image %dx%d", j->width, j->height);
    sdlog(0, "stable-diffusion.cpp", 4380, "sampling using Euler A method");
    if (!g.loaded_te) {
        load_bars(g.model.te_mb, g.model.te_tensors);
        g.loaded_te = 1;
    }
    sdlog(0, "stable-diffusion.cpp", 5296, "get_learned_condition completed, taking 0.01s");
    for (int img = 1; img <= j->batch; img++) {
        sdlog(0, "stable-diffusion.cpp", 5679, "generating image: %d/%d - seed %lld", img, j->batch,
              j->seed + img - 1);
        if (!g.loaded_unet) {
            load_bars(g.model.unet_mb, g.model.unet_tensors);
            g.loaded_unet = 1;
        }
        for (int k = 1; k <= j->steps; k++) {
            step_switches();
            sleep_ms(step_ms);
            char speed[32];
            if (step_ms >= 1000)
                snprintf(speed, sizeof(speed), "%.2fs/it", step_ms / 1000.0);
            else
                snprintf(speed, sizeof(speed), "%.2fit/s", 1000.0 / (step_ms > 0 ? step_ms : 1));
            bar(0, k, j->steps, speed);
        }
        sdlog(0, "stable-diffusion.cpp", 5711, "sampling completed, taking 0.01s");
    }
    sdlog(0, "stable-diffusion.cpp", 5723, "generating %d latent images completed, taking 0.01s",
          j->batch);
    sdlog(0, "stable-diffusion.cpp", 5321, "decoding %d latents", j->batch);
    if (!g.loaded_vae) {
        load_bars(g.model.vae_mb, g.model.vae_tensors);
        g.loaded_vae = 1;
    }
    char **imgs = mem_calloc((size_t)j->batch, sizeof(char *));
    uint8_t *rgb = mem_alloc((size_t)j->width * (size_t)j->height * 3);
    int ok = imgs != NULL && rgb != NULL;
    for (int i = 0; ok && i < j->batch; i++) {
        sdlog(0, "stable-diffusion.cpp", 5387, "latent %d decoded, taking 0.01s", i + 1);
        uint8_t *png = NULL;
        size_t len = 0;
        sdpng_fill_pattern(rgb, (uint32_t)j->width, (uint32_t)j->height, (uint64_t)(j->seed + i));
        ok = sdpng_encode_rgb(rgb, (uint32_t)j->width, (uint32_t)j->height, "parameters", j->prompt,
                              &png, &len) == 0;
        if (ok)
            imgs[i] = base64(png, len);
        ok = ok && imgs[i] != NULL;
        mem_free(png);
    }
    mem_free(rgb);
    sdlog(0, "stable-diffusion.cpp", 5391, "decode_first_stage completed, taking 0.01s");
    sdlog(0, "stable-diffusion.cpp", 5861, "generate_image completed in 0.05s");
    pthread_mutex_lock(&g.mu);
    j->completed = time(NULL);
    if (ok) {
        j->st = J_COMPLETED;
        j->images = imgs;
        j->n_images = j->batch;
    } else {
        for (int i = 0; imgs != NULL && i < j->batch; i++)
            mem_free(imgs[i]);
        mem_free(imgs);
        j->st = J_FAILED;
        j->err_code = "generation_failed";
        j->err_msg = "generate_image returned no results";
    }
    pthread_mutex_unlock(&g.mu);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    for (;;) {
        struct job *next = NULL;
        for (int i = 0; i < g.n && next == NULL; i++)
            if (g.jobs[i]->st == J_QUEUED)
                next = g.jobs[i];
        if (next == NULL) {
            pthread_cond_wait(&g.cv, &g.mu);
            continue;
        }
        next->st = J_GENERATING;
        next->started = time(NULL);
        pthread_mutex_unlock(&g.mu);
        generate(next);
        pthread_mutex_lock(&g.mu);
    }
    return NULL;
}

/* ------------------------------------------------------------------ HTTP */

struct body {
    char *data;
    size_t len;
    int too_big;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    free(text); /* jansson's allocator */
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return reply(c, status, json_pack("{s:s}", "error", msg));
}

static json_t *capabilities(void)
{
    json_t *defaults =
        json_pack("{s:i, s:i, s:i, s:I, s:s, s:s, s:i, s:s}", "width", g.def_w, "height", g.def_h,
                  "sample_steps", g.def_steps, "seed", (json_int_t)g.def_seed, "sample_method",
                  "euler_a", "scheduler", "discrete", "batch_count", 1, "output_format", "png");
    json_t *o = json_object();
    json_object_set_new(o, "current_mode", json_string("img_gen"));
    json_object_set_new(o, "defaults", defaults);
    json_object_set_new(o, "defaults_by_mode",
                        json_pack("{s:O}", "img_gen", json_object_get(o, "defaults")));
    json_object_set_new(o, "features",
                        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}",
                                  "cache", 1, "cancel_generating", 0, "cancel_queued", 1,
                                  "control_image", 1, "hires", 1, "init_image", 1,
                                  "ip_adapter_image", 1, "lora", 1, "mask_image", 1, "ref_images",
                                  1, "vae_tiling", 1));
    json_object_set_new(o, "features_by_mode", json_object());
    json_object_set_new(o, "limits",
                        json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "max_batch_count", 8,
                                  "max_height", 4096, "max_queue_size", MAX_PENDING, "max_width",
                                  4096, "min_height", 64, "min_width", 64));
    json_object_set_new(o, "loras", json_array());
    json_object_set_new(o, "model",
                        json_pack("{s:s, s:s, s:s}", "name", g.model.name, "path", g.model.path,
                                  "stem", g.model.stem));
    json_object_set_new(o, "output_formats", json_pack("[s, s]", "png", "jpeg"));
    json_object_set_new(o, "output_formats_by_mode", json_object());
    json_object_set_new(o, "samplers", json_pack("[s, s, s]", "euler_a", "euler", "dpm++2m"));
    json_object_set_new(o, "schedulers", json_pack("[s, s]", "discrete", "karras"));
    json_object_set_new(o, "supported_modes", json_pack("[s]", "img_gen"));
    json_object_set_new(o, "upscalers", json_array());
    return o;
}

static int json_int_field(json_t *o, const char *key, long long dflt, long long *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return -1;
    *out = json_integer_value(v);
    return 0;
}

static enum MHD_Result submit(struct MHD_Connection *c, const struct body *b)
{
    if (b->len == 0)
        return reply_error(c, 400, "empty body");
    json_error_t je;
    json_t *req = json_loadb(b->data, b->len, 0, &je);
    if (req == NULL || !json_is_object(req)) {
        json_decref(req);
        return reply(c, 400, json_pack("{s:s, s:s}", "error", "invalid json", "message", je.text));
    }
    const char *prompt = json_string_value(json_object_get(req, "prompt"));
    long long w, h, seed, batch, steps = g.def_steps;
    json_t *sp = json_object_get(req, "sample_params");
    if (prompt == NULL || json_int_field(req, "width", g.def_w, &w) < 0 ||
        json_int_field(req, "height", g.def_h, &h) < 0 ||
        json_int_field(req, "seed", g.def_seed, &seed) < 0 ||
        json_int_field(req, "batch_count", 1, &batch) < 0 ||
        (sp != NULL && json_int_field(sp, "sample_steps", g.def_steps, &steps) < 0)) {
        json_decref(req);
        return reply_error(c, 400, "invalid generation parameters");
    }
    /* The server's own resolution (§8.5): 0 -> 512, aligned up to 64, limits
     * not enforced; batch clamped to 8, steps to 1..100, seed < 0 random. */
    w = w <= 0 ? 512 : (w + 63) / 64 * 64;
    h = h <= 0 ? 512 : (h + 63) / 64 * 64;
    if (w > 8192 || h > 8192) {
        json_decref(req);
        return reply_error(c, 400, "image too large for the double");
    }
    batch = batch < 1 ? 1 : batch > 8 ? 8 : batch;
    steps = steps < 1 ? 1 : steps > 100 ? 100 : steps;
    if (seed < 0)
        seed = (long long)(time(NULL) & 0x7fffffff);
    struct job *j = mem_calloc(1, sizeof(*j));
    char *p = mem_strdup(prompt);
    json_decref(req);
    if (j == NULL || p == NULL) {
        mem_free(j);
        mem_free(p);
        return reply(c, 500, json_pack("{s:s, s:s}", "error", "server_error", "message", "oom"));
    }
    j->prompt = p;
    j->width = (int)w, j->height = (int)h, j->steps = (int)steps, j->batch = (int)batch;
    j->seed = seed;
    j->created = time(NULL);
    pthread_mutex_lock(&g.mu);
    if (pending_locked() >= MAX_PENDING || g.n >= MAX_JOBS) {
        pthread_mutex_unlock(&g.mu);
        mem_free(j->prompt);
        mem_free(j);
        return reply_error(c, 429, "job queue is full");
    }
    snprintf(j->id, sizeof(j->id), "job_%08x_%08x", (unsigned)j->created, g.counter++);
    j->st = J_QUEUED;
    g.jobs[g.n++] = j;
    json_t *stub =
        json_pack("{s:I, s:s, s:s, s:s, s:s}", "created", (json_int_t)j->created, "id", j->id,
                  "kind", "img_gen", "poll_url", "", "status", jstate_name[j->st]);
    char poll[96];
    snprintf(poll, sizeof(poll), "/sdcpp/v1/jobs/%s", j->id);
    json_object_set_new(stub, "poll_url", json_string(poll));
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    return reply(c, 202, stub);
}

/* The job, or NULL with *gone set when it expired (410) rather than never
 * existed (404). Called with g.mu held. */
static struct job *find_locked(const char *id, int *gone)
{
    *gone = 0;
    time_t now = time(NULL);
    for (int i = 0; i < g.n; i++) {
        struct job *j = g.jobs[i];
        if (strcmp(j->id, id) != 0)
            continue;
        if (j->completed && now - j->completed >= g.keep_s) {
            *gone = now - j->completed < 2 * g.keep_s;
            return NULL;
        }
        return j;
    }
    return NULL;
}

static enum MHD_Result job_route(struct MHD_Connection *c, const char *method, const char *rest)
{
    char id[64];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    int cancel = slash != NULL && strcmp(slash, "/cancel") == 0;
    if (n == 0 || n >= sizeof(id) || (slash != NULL && !cancel))
        return reply_error(c, 404, "not found");
    memcpy(id, rest, n);
    id[n] = '\0';
    if (strcmp(method, cancel ? "POST" : "GET") != 0)
        return reply_error(c, 404, "not found");
    pthread_mutex_lock(&g.mu);
    int gone;
    struct job *j = find_locked(id, &gone);
    if (j == NULL) {
        pthread_mutex_unlock(&g.mu);
        return gone ? reply_error(c, 410, "job expired") : reply_error(c, 404, "job not found");
    }
    if (cancel && j->st == J_GENERATING) {
        pthread_mutex_unlock(&g.mu);
        return reply_error(c, 409, "job is currently generating and cannot be interrupted yet");
    }
    if (cancel && j->st == J_QUEUED) {
        j->st = J_CANCELLED;
        j->completed = time(NULL);
        j->err_code = "cancelled";
        j->err_msg = "job cancelled by client";
    }
    json_t *o = job_json_locked(j);
    pthread_mutex_unlock(&g.mu);
    return reply(c, 200, o);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct body *b = *con_cls;
    if (b == NULL) {
        b = mem_calloc(1, sizeof(*b));
        if (b == NULL)
            return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (b->len + *upload_size > MAX_BODY) {
            b->too_big = 1;
        } else {
            char *nd = mem_realloc(b->data, b->len + *upload_size + 1);
            if (nd == NULL)
                return MHD_NO;
            memcpy(nd + b->len, upload, *upload_size);
            b->data = nd;
            b->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (b->too_big)
        return reply_error(c, 413, "body too large");
    if (strcmp(url, "/") == 0 && strcmp(method, "GET") == 0) {
        const char *t = "Stable Diffusion Server is running";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/sdcpp/v1/capabilities") == 0 && strcmp(method, "GET") == 0)
        return reply(c, 200, capabilities());
    if (strcmp(url, "/sdcpp/v1/img_gen") == 0 && strcmp(method, "POST") == 0)
        return submit(c, b);
    if (strncmp(url, "/sdcpp/v1/jobs/", 15) == 0)
        return job_route(c, method, url + 15);
    if (strcmp(url, "/v1/models") == 0 && strcmp(method, "GET") == 0)
        return reply(c, 200,
                     json_pack("{s:[{s:s, s:s, s:s}]}", "data", "id", "sd-cpp-local", "object",
                               "model", "owned_by", "local"));
    return reply_error(c, 404, "not found");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct body *b = *con_cls;
    if (b != NULL) {
        mem_free(b->data);
        mem_free(b);
    }
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ main */

static const char *const value_flags[] = {"-m",
                                          "--model",
                                          "--diffusion-model",
                                          "--vae",
                                          "--clip_l",
                                          "--clip_g",
                                          "--t5xxl",
                                          "-W",
                                          "--width",
                                          "-H",
                                          "--height",
                                          "--steps",
                                          "-s",
                                          "--seed",
                                          "--cfg-scale",
                                          "--sampling-method",
                                          "--scheduler",
                                          "-t",
                                          "--threads",
                                          "--backend",
                                          "--params-backend",
                                          "--listen-ip",
                                          "--listen-port",
                                          "-b",
                                          "--batch-count",
                                          "--serve-html-path",
                                          "--max-vram",
                                          "--type"};
static const char *const bool_flags[] = {"-v",     "--verbose",      "--offload-to-cpu",
                                         "--fa",   "--diffusion-fa", "--vae-tiling",
                                         "--mmap", "--eager-load",   "--color"};

static int in_list(const char *s, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, l[i]) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *version = getenv("FAKE_SD_VERSION");
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("stable-diffusion.cpp version %s, commit 97d29908\n",
               version ? version : "master-827-97d2990");
        return 0;
    }
    const char *pidf = getenv("FAKE_SD_PID_FILE");
    if (pidf != NULL && pidf[0] != '\0') {
        FILE *f = fopen(pidf, "we");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    const char *model = NULL, *ip = "127.0.0.1";
    long port = 1234;
    g.def_w = g.def_h = 512;
    g.def_steps = 20;
    g.def_seed = 42;
    g.keep_s = env_long("FAKE_SD_JOB_KEEP_S", 600);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (in_list(f, bool_flags, sizeof(bool_flags) / sizeof(bool_flags[0])))
            continue;
        if (!in_list(f, value_flags, sizeof(value_flags) / sizeof(value_flags[0])) ||
            i + 1 >= argc) {
            sdlog(1, "common.cpp", 325, "error: unknown argument: %s", f);
            return 1;
        }
        const char *v = argv[++i];
        long n = strtol(v, NULL, 10);
        if (strcmp(f, "-m") == 0 || strcmp(f, "--model") == 0 ||
            strcmp(f, "--diffusion-model") == 0)
            model = v;
        else if (strcmp(f, "--listen-ip") == 0)
            ip = v;
        else if (strcmp(f, "--listen-port") == 0)
            port = n;
        else if (strcmp(f, "-W") == 0 || strcmp(f, "--width") == 0)
            g.def_w = (int)n;
        else if (strcmp(f, "-H") == 0 || strcmp(f, "--height") == 0)
            g.def_h = (int)n;
        else if (strcmp(f, "--steps") == 0)
            g.def_steps = (int)n;
        else if (strcmp(f, "-s") == 0 || strcmp(f, "--seed") == 0)
            g.def_seed = n;
    }
    if (model == NULL) {
        sdlog(1, "common.cpp", 742,
              "error: the following arguments are required: model_path/diffusion_model");
        return 1;
    }
    sdlog(0, "stable-diffusion.cpp", 713, "loading model from '%s'", model);
    int rc = model_load(model, &g.model);
    if (rc != 0) {
        if (rc == -ENOENT)
            sdlog(1, "stable-diffusion.cpp", 715, "init model loader from file failed: '%s'",
                  model);
        sdlog(1, "stable-diffusion.cpp", 905, "get sd version from file failed: '%s'", model);
        sdlog(1, "main.cpp", 92, "new_sd_ctx_t failed");
        return 1;
    }
    sdlog(0, "stable-diffusion.cpp", 908, "Version: %s ", g.model.version);
    double total =
        g.model.total_mb > 0 ? g.model.total_mb : g.model.te_mb + g.model.unet_mb + g.model.vae_mb;
    sdlog(0, "stable-diffusion.cpp", 1745,
          "total params memory size = %.2fMB (VRAM 0.00MB, RAM %.2fMB): text_encoders "
          "%.2fMB(RAM), diffusion_model %.2fMB(RAM), vae %.2fMB(RAM), controlnet 0.00MB(N/A), "
          "extensions 0.00MB(N/A)",
          total, total, g.model.te_mb, g.model.unet_mb, g.model.vae_mb);

    pthread_t th;
    if (pthread_create(&th, NULL, worker, NULL) != 0)
        return 1;
    pthread_detach(th);
    /* Printed before the bind, as the real server does (§8.1 step 4). */
    sdlog(0, "main.cpp", 148, "listening on: http://%s:%ld", ip, port);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1 || port <= 0 || port > 65535)
        return 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL, NULL, on_request,
        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (d == NULL)
        return 0; /* the bind failed: exit 0, no error line (§8.1 step 5) */
    for (;;)
        pause(); /* no signal handler: SIGTERM ends the process (143) */
}
