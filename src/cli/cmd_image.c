/*
 * cmd_image.c - `genai image PROMPT -m MODEL -o out.png [...]`: one image job
 * through the runner (src/image/runner.h), in this process.
 *
 * The command is its own loop thread: it makes a libuv loop, a runner on it,
 * submits one job and runs the loop until the job has finished. Progress goes
 * to stderr as one redrawn line on a terminal, or to stdout as JSON lines
 * with --json ({"event":"progress",...} on every stage, image or step change,
 * then one {"event":"done",...}). SIGINT and SIGTERM cancel the job: the
 * runner stops sd-cli (escalating to SIGKILL), reaps it and removes its
 * output directory before the command exits with status 130.
 *
 * The model is a file (-m CHECKPOINT, or --diffusion-model with its
 * components) or a registered model's id (-m ID: its files by role and its
 * settings override). Before the job is queued the runner applies the
 * model's settings (src/image/resolve.h): what the request leaves out takes
 * the model's values, and what it asks outside the model's range is
 * adjusted with a warning, or refused under --policy strict. The settings
 * used and every warning are printed (stderr; in the "done" event with
 * --json).
 *
 * Output files: one image is written to the -o path; a batch of N writes
 * <stem>-1<ext> ... <stem>-N<ext> (out.png -> out-1.png, out-2.png). Each
 * file is written to a temporary name beside it and renamed into place, so a
 * reader never sees half a PNG.
 */
#include "cli.h"
#include "core/alloc.h"
#include "core/paths.h"
#include "image/runner.h"
#include "store/dmodel.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "image"

struct image_ctx {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    img_runner *runner;
    uint64_t id;
    int json;
    int tty;
    int interrupted;
    int64_t last_draw_ms;
    img_progress shown;
    int line_open;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai image PROMPT -m MODEL|ID [-o out.png] [options]\n"
            "       genai image PROMPT --diffusion-model F [--vae F] [--clip-l F] [--clip-g F]\n"
            "                   [--t5xxl F] [-o out.png] [options]\n\n"
            "Makes an image with stable-diffusion.cpp's sd-cli (found through --sd-cli,\n"
            "GENAI_SD_CLI or PATH). -m takes a checkpoint file or a registered model's\n"
            "id (genai list). genai picks where each part runs so the job fits in\n"
            "memory; the flags below are a floor it adds to.\n\n"
            "Settings the command leaves out take the model's own (see 'genai show ID',\n"
            "'genai settings ID'); a value outside what the model supports is adjusted\n"
            "with a warning, or refused with --policy strict.\n\n"
            "Options:\n"
            "  -o, --output FILE     PNG to write (default output.png); a batch writes\n"
            "                        FILE-1.png, FILE-2.png, ...\n"
            "  --size WxH            multiples of 64, 64..4096 (default: the model's)\n"
            "  --steps N             sampling steps, 1..100 (default: the model's)\n"
            "  --cfg X               cfg-scale, 0..30 (default: the model's)\n"
            "  --guidance X          distilled guidance, 0..30 (Flux dev; default 3.5)\n"
            "  --policy P            adjust (default: the model's) or strict: what to do\n"
            "                        with a value outside what the model supports\n"
            "  --seed N              seed (default: random, printed)\n"
            "  --negative TEXT       negative prompt\n"
            "  --sampler S           e.g. euler_a, euler, dpm++2m\n"
            "  --scheduler S         e.g. discrete, karras\n"
            "  --batch N             images, 1..8 (seeds N, N+1, ...)\n"
            "  --threads N           CPU threads for sd-cli\n"
            "  --te-cpu              text encoder on the CPU\n"
            "  --vae-cpu             VAE on the CPU\n"
            "  --vae-tiling          decode the image in tiles\n"
            "  --offload             keep weights in RAM, upload each part when it runs\n"
            "  --fa                  flash attention in the diffusion model\n"
            "  --fixed-placement     use exactly the flags above; skip the planner\n"
            "  --sd-cli PATH         the sd-cli to run\n"
            "  --json                JSON lines on stdout: progress events, then \"done\"\n"
            "  -h, --help            this text\n");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- numbers (sd-cli aborts on a non-numeric value: check them here) ---- */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_size(const char *s, uint32_t *w, uint32_t *h)
{
    char buf[32];
    if (strlen(s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    char *x = strchr(buf, 'x');
    if (x == NULL)
        return -1;
    *x = '\0';
    return parse_u32(buf, IMG_SIDE_MAX, w) < 0 || parse_u32(x + 1, IMG_SIDE_MAX, h) < 0 ? -1 : 0;
}

/* ---- progress ------------------------------------------------------------ */

static void clear_line(struct image_ctx *c)
{
    if (c->line_open) {
        fputs("\r\033[K", stderr);
        c->line_open = 0;
    }
}

static void draw_tty(struct image_ctx *c, const img_progress *p)
{
    char what[64] = "";
    if (p->stage == IMG_STAGE_SAMPLING && p->steps > 0)
        snprintf(what, sizeof(what), " image %u/%u step %u/%u", p->image, p->images, p->step,
                 p->steps);
    else if (p->stage == IMG_STAGE_DECODING && p->tiles_total > 0)
        snprintf(what, sizeof(what), " tile %u/%u", p->tiles_done, p->tiles_total);
    else if (p->load_total > 0 && p->load_done < p->load_total)
        snprintf(what, sizeof(what), " loading %u/%u", p->load_done, p->load_total);
    char bar[25];
    int fill = p->percent * 24 / 100;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(24 - fill));
    bar[24] = '\0';
    fprintf(stderr, "\r%-9s [%s] %3d%%%s\033[K", img_stage_name(p->stage), bar, p->percent, what);
    fflush(stderr);
    c->line_open = 1;
}

/* One compact JSON object per line (JSON lines); steals o. */
static int emit_json(json_t *o)
{
    if (o == NULL)
        return -1;
    int rc = json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        return -1;
    return 0;
}

static void emit_json_progress(const img_job *j)
{
    const img_progress *p = &j->progress;
    json_t *o = json_pack("{s:s, s:I, s:s, s:i, s:i, s:i, s:i, s:i}", "event", "progress", "job",
                          (json_int_t)j->id, "stage", img_stage_name(p->stage), "image",
                          (int)p->image, "images", (int)p->images, "step", (int)p->step, "steps",
                          (int)p->steps, "percent", p->percent);
    emit_json(o);
}

static void on_progress(void *arg, img_runner *r, const img_job *j)
{
    (void)r;
    struct image_ctx *c = arg;
    const img_progress *p = &j->progress, *s = &c->shown;
    int changed = p->stage != s->stage || p->image != s->image || p->step != s->step ||
                  p->percent != s->percent || p->tiles_done != s->tiles_done;
    if (c->json) {
        if (changed)
            emit_json_progress(j);
    } else if (c->tty) {
        int64_t now = mono_ms();
        /* Redraw at most 10 times a second, but every stage change at once. */
        if (p->stage != s->stage || now - c->last_draw_ms >= 100) {
            draw_tty(c, p);
            c->last_draw_ms = now;
        }
    }
    c->shown = *p;
}

/* ---- signals --------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct image_ctx *c = h->data;
    if (!c->interrupted) {
        c->interrupted = 1;
        clear_line(c);
        if (!c->json)
            fprintf(stderr, "genai image: %s: cancelling\n", strsignal(signum));
    }
    img_runner_cancel(c->runner, c->id);
}

/* ---- results ---------------------------------------------------------------- */

static int batch_name(const char *out, uint32_t n, uint32_t i, char *buf, size_t bufsz)
{
    if (n == 1)
        return snprintf(buf, bufsz, "%s", out) < (int)bufsz ? 0 : -ENAMETOOLONG;
    const char *slash = strrchr(out, '/');
    const char *dot = strrchr(out, '.');
    if (dot == NULL || (slash != NULL && dot < slash) || dot == (slash ? slash + 1 : out))
        return snprintf(buf, bufsz, "%s-%u", out, i + 1) < (int)bufsz ? 0 : -ENAMETOOLONG;
    return snprintf(buf, bufsz, "%.*s-%u%s", (int)(dot - out), out, i + 1, dot) < (int)bufsz
               ? 0
               : -ENAMETOOLONG;
}

/* Writes data to path through a temporary file in the same directory. */
static int write_atomic(const char *path, const uint8_t *data, size_t len, genai_error *err)
{
    char tmp[PATHS_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
        return err_set(err, -ENAMETOOLONG, "'%s' is too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, errno, "creating a file beside '%s'", path);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return err_errno(err, e, "writing '%s'", path);
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return err_errno(err, e, "writing '%s'", path);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return err_errno(err, e, "renaming into '%s'", path);
    }
    return 0;
}

/* The model's settings as applied, and each warning, on stderr (human
 * mode); with --json they travel in the "done" event. */
static void report_settings(struct image_ctx *c, const img_run_info *in)
{
    const img_resolution *res = in != NULL ? in->resolution : NULL;
    if (c->json || res == NULL)
        return;
    if (!res->known) {
        fprintf(stderr, "genai image: note: %s\n", res->note);
        return;
    }
    const dm_resolved *r = &res->resolved;
    char label[64], guidance[32] = "";
    if (r->use_guidance)
        snprintf(guidance, sizeof(guidance), ", guidance %g", r->guidance);
    fprintf(stderr, "genai image: %s: %ux%u, %u steps, cfg %g%s, %s/%s\n",
            img_model_label(&res->settings, label, sizeof(label)), r->width, r->height, r->steps,
            r->cfg, guidance, r->sampler, r->scheduler);
    for (size_t i = 0; i < r->n_warnings; i++)
        fprintf(stderr, "genai image: warning: %s\n", r->warnings[i].message);
}

/* Adds {"model_settings": ...} to a "done" event. */
static void add_settings_json(json_t *o, const img_run_info *in)
{
    if (o == NULL || in == NULL || in->resolution == NULL)
        return;
    json_t *r = img_resolution_to_json(in->resolution);
    if (r == NULL)
        return;
    json_object_set(o, "warnings", json_object_get(r, "warnings"));
    json_object_set_new(o, "model_settings", r);
}

static int report_success(struct image_ctx *c, const img_job *j, const img_run_info *in,
                          const char *out)
{
    json_t *files = c->json ? json_array() : NULL;
    json_t *seeds = c->json ? json_array() : NULL;
    double secs = (double)img_job_duration_ms(j) / 1000.0;
    for (uint32_t i = 0; i < j->n_results; i++) {
        char path[PATHS_MAX];
        genai_error e;
        genai_error_clear(&e);
        int rc = batch_name(out, j->n_results, i, path, sizeof(path));
        if (rc == 0)
            rc = write_atomic(path, j->results[i].png, j->results[i].png_len, &e);
        if (rc < 0) {
            cli_report(CMD, rc, &e);
            json_decref(files);
            json_decref(seeds);
            return CLI_FAIL;
        }
        if (c->json) {
            json_array_append_new(files, json_string(path));
            json_array_append_new(seeds, json_integer((json_int_t)j->results[i].seed));
        } else {
            printf("wrote %s (%ux%u, seed %lld)\n", path, j->results[i].width, j->results[i].height,
                   (long long)j->results[i].seed);
        }
    }
    if (!c->json) {
        printf("seed %lld, %.1f s, placement %s\n", (long long)j->req.seed, secs,
               in != NULL ? in->placement_str : "?");
        return CLI_OK;
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:o, s:o, s:I, s:i, s:i, s:f, s:s}", "event", "done",
                          "job", (json_int_t)j->id, "state", "succeeded", "files", files, "seeds",
                          seeds, "seed", (json_int_t)j->req.seed, "width", (int)j->results[0].width,
                          "height", (int)j->results[0].height, "seconds", secs, "placement",
                          in != NULL ? in->placement_str : "");
    add_settings_json(o, in);
    return emit_json(o) == 0 ? CLI_OK : CLI_FAIL;
}

static int report_failure(struct image_ctx *c, const img_job *j, const img_run_info *in)
{
    int cancelled = j->state == IMG_JOB_CANCELLED;
    const char *msg = in != NULL && in->message != NULL ? in->message : j->error;
    if (!c->json) {
        if (cancelled)
            fprintf(stderr, "genai image: cancelled; no image was written\n");
        else
            fprintf(stderr, "genai image: failed: %s%s", msg,
                    msg[0] != '\0' && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
        return cancelled ? 130 : CLI_FAIL;
    }
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "event", "done", "job", (json_int_t)j->id,
                          "state", img_job_state_name(j->state), "error", msg, "code",
                          genai_err_name(j->error_code));
    if (o != NULL && in != NULL) {
        if (in->ended) {
            json_object_set_new(o, "cause", json_string(img_cause_name(in->cause)));
            if (in->exited)
                json_object_set_new(o, "exit_code", json_integer(in->exit_code));
            else
                json_object_set_new(o, "signal", json_integer(in->term_signal));
        }
        if (in->tail != NULL)
            json_object_set_new(o, "last_lines", json_string(in->tail));
        if (in->planned)
            json_object_set_new(o, "placement", json_string(in->placement_str));
    }
    add_settings_json(o, in);
    emit_json(o);
    return cancelled ? 130 : CLI_FAIL;
}

/* ---- the command -------------------------------------------------------------- */

struct image_args {
    img_request req;
    img_job_opts jo;
    const char *out;
    const char *sd_cli;
    int json;
    store_model reg; /* -m ID: the registered model whose files req points to */
    int has_reg;
};

static int takes_value(const char *f)
{
    static const char *const valued[] = {
        "-m",          "--model",    "--diffusion-model", "--vae",    "--clip-l",   "--clip-g",
        "--t5xxl",     "-o",         "--output",          "--sd-cli", "--negative", "--sampler",
        "--scheduler", "--size",     "--steps",           "--batch",  "--threads",  "--seed",
        "--cfg",       "--guidance", "--policy"};
    for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++)
        if (strcmp(f, valued[i]) == 0)
            return 1;
    return 0;
}

/*
 * -m ID: the registered model's files by role and its settings override. A
 * model whose text encoders come as separate files runs as
 * --diffusion-model plus components; one that has none is a checkpoint (-m)
 * with, at most, its own VAE. Component flags given on the command line
 * replace the registered ones.
 */
static int use_registered(struct image_args *a, const char *id, genai_error *err)
{
    store *s = NULL;
    int rc = store_open(&s, err);
    if (rc == 0)
        rc = store_db_get_model(store_registry(s), id, &a->reg, err);
    store_close(s);
    if (rc == GENAI_ENOT_FOUND)
        return err_set(err, rc, "'%s' is neither a file nor a registered model (genai list)", id);
    if (rc < 0)
        return rc;
    a->has_reg = 1;
    if (a->reg.kind != STORE_KIND_DIFFUSION)
        return err_set(err, GENAI_EBAD_ARG, "model %s is an LLM; try 'genai run %s'", id, id);
    dm_component comps[DM_ROLE__COUNT];
    size_t n = 0;
    if ((rc = store_dm_components(&a->reg, comps, &n, err)) < 0)
        return rc;
    img_request *r = &a->req;
    const char *main_file = NULL;
    int split = 0;
    for (size_t i = 0; i < n; i++) {
        char *path = (char *)comps[i].path;
        switch (comps[i].role) {
        case DM_ROLE_MODEL:
            main_file = path;
            break;
        case DM_ROLE_CLIP_L:
            r->clip_l = r->clip_l != NULL ? r->clip_l : path;
            split = 1;
            break;
        case DM_ROLE_CLIP_G:
            r->clip_g = r->clip_g != NULL ? r->clip_g : path;
            split = 1;
            break;
        case DM_ROLE_T5XXL:
            r->t5xxl = r->t5xxl != NULL ? r->t5xxl : path;
            split = 1;
            break;
        default:
            r->vae = r->vae != NULL ? r->vae : path;
            break;
        }
    }
    if (main_file == NULL)
        return err_set(err, GENAI_ECORRUPT, "model %s has no file with role model", id);
    r->model = split ? NULL : (char *)main_file;
    r->diffusion_model = split ? (char *)main_file : NULL;
    r->settings_json = a->reg.settings_json;
    return 0;
}

static int parse_args(int argc, char **argv, struct image_args *a)
{
    memset(a, 0, sizeof(*a));
    a->out = "output.png";
    img_request *r = &a->req;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t u;
        int takes = 1;
        if (strcmp(f, "-h") == 0 || strcmp(f, "--help") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(f, "--json") == 0) {
            a->json = 1;
            takes = 0;
        } else if (strcmp(f, "--te-cpu") == 0) {
            r->te_on_cpu = 1;
            takes = 0;
        } else if (strcmp(f, "--vae-cpu") == 0) {
            r->vae_on_cpu = 1;
            takes = 0;
        } else if (strcmp(f, "--vae-tiling") == 0) {
            r->vae_tiling = 1;
            takes = 0;
        } else if (strcmp(f, "--offload") == 0) {
            r->offload_to_cpu = 1;
            takes = 0;
        } else if (strcmp(f, "--fa") == 0) {
            r->diffusion_fa = 1;
            takes = 0;
        } else if (strcmp(f, "--fixed-placement") == 0) {
            a->jo.plan = IMG_PLAN_FIXED;
            takes = 0;
        } else if (takes_value(f) && v == NULL) {
            return cli_usage_error(CMD, "%s needs a value", f);
        } else if (strcmp(f, "-m") == 0 || strcmp(f, "--model") == 0) {
            r->model = (char *)v;
        } else if (strcmp(f, "--diffusion-model") == 0) {
            r->diffusion_model = (char *)v;
        } else if (strcmp(f, "--vae") == 0) {
            r->vae = (char *)v;
        } else if (strcmp(f, "--clip-l") == 0) {
            r->clip_l = (char *)v;
        } else if (strcmp(f, "--clip-g") == 0) {
            r->clip_g = (char *)v;
        } else if (strcmp(f, "--t5xxl") == 0) {
            r->t5xxl = (char *)v;
        } else if (strcmp(f, "-o") == 0 || strcmp(f, "--output") == 0) {
            a->out = v;
        } else if (strcmp(f, "--sd-cli") == 0) {
            a->sd_cli = v;
        } else if (strcmp(f, "--negative") == 0) {
            r->negative_prompt = (char *)v;
        } else if (strcmp(f, "--sampler") == 0) {
            r->sampler = (char *)v;
        } else if (strcmp(f, "--scheduler") == 0) {
            r->scheduler = (char *)v;
        } else if (strcmp(f, "--size") == 0) {
            if (parse_size(v, &r->width, &r->height) < 0)
                return cli_usage_error(CMD, "--size wants WxH, e.g. 768x768, not '%s'", v);
        } else if (strcmp(f, "--steps") == 0) {
            if (parse_u32(v, IMG_STEPS_MAX, &r->steps) < 0 || r->steps == 0)
                return cli_usage_error(CMD, "--steps wants 1..%u, not '%s'", IMG_STEPS_MAX, v);
        } else if (strcmp(f, "--batch") == 0) {
            if (parse_u32(v, IMG_BATCH_MAX, &r->batch_count) < 0 || r->batch_count == 0)
                return cli_usage_error(CMD, "--batch wants 1..%u, not '%s'", IMG_BATCH_MAX, v);
        } else if (strcmp(f, "--threads") == 0) {
            if (parse_u32(v, IMG_THREADS_MAX, &u) < 0 || u == 0)
                return cli_usage_error(CMD, "--threads wants 1..%d, not '%s'", IMG_THREADS_MAX, v);
            r->threads = (int32_t)u;
        } else if (strcmp(f, "--seed") == 0) {
            char *end;
            errno = 0;
            long long s = strtoll(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0)
                return cli_usage_error(CMD, "--seed wants a number >= 0, not '%s'", v);
            r->seed = s;
            r->has_seed = 1;
        } else if (strcmp(f, "--cfg") == 0 || strcmp(f, "--guidance") == 0) {
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
                return cli_usage_error(CMD, "%s wants a number, not '%s'", f, v);
            if (f[2] == 'c') {
                r->cfg_scale = d;
                r->has_cfg = 1;
            } else {
                r->guidance = d;
                r->has_guidance = 1;
            }
        } else if (strcmp(f, "--policy") == 0) {
            enum dm_policy p;
            if (dm_policy_parse(v, &p, NULL) < 0)
                return cli_usage_error(CMD, "--policy is adjust or strict, not '%s'", v);
            r->policy = (int)p;
        } else if (f[0] == '-' && f[1] != '\0') {
            return cli_usage_error(CMD, "unknown option '%s'", f);
        } else if (r->prompt == NULL) {
            r->prompt = (char *)f;
            takes = 0;
        } else {
            return cli_usage_error(CMD, "one prompt only (quote it): '%s'", f);
        }
        i += takes;
    }
    if (r->prompt == NULL)
        return cli_usage_error(CMD, "a prompt is required");
    if (r->model == NULL && r->diffusion_model == NULL)
        return cli_usage_error(CMD, "a model is required (-m FILE|ID or --diffusion-model FILE)");
    genai_error e;
    genai_error_clear(&e);
    int rc = 0;
    if (r->model != NULL && access(r->model, F_OK) != 0 && store_id_valid(r->model))
        rc = use_registered(a, r->model, &e);
    if (rc < 0) {
        cli_report(CMD, rc, &e);
        return CLI_FAIL;
    }
    if (img_request_validate(r, &e) < 0)
        return cli_usage_error(CMD, "%s", e.detail);
    return 0;
}

int cmd_image(int argc, char **argv)
{
    struct image_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        store_model_free(&a.reg);
        return rc == 1 ? CLI_OK : rc;
    }

    struct image_ctx c;
    memset(&c, 0, sizeof(c));
    c.json = a.json;
    c.tty = !a.json && cli_is_tty(2);
    if (uv_loop_init(&c.loop) != 0) {
        fprintf(stderr, "genai image: cannot create an event loop\n");
        store_model_free(&a.reg);
        return CLI_FAIL;
    }
    img_runner_opts o = {.sd_cli = a.sd_cli, .on_progress = on_progress, .arg = &c};
    genai_error e;
    genai_error_clear(&e);
    rc = img_runner_new(&c.loop, &o, &c.runner, &e);
    if (rc == 0)
        rc = img_runner_submit(c.runner, &a.req, &a.jo, &c.id, &e);
    int status = CLI_FAIL;
    if (rc < 0) {
        /* Refused before sd-cli ran: a missing component, or a setting the
         * model does not support under the strict policy. */
        cli_report(CMD, rc, &e);
        if (c.json)
            emit_json(json_pack("{s:s, s:s, s:s, s:s}", "event", "done", "state", "failed", "error",
                                e.detail, "code", genai_err_name(rc)));
        goto out;
    }
    report_settings(&c, img_runner_info(c.runner, c.id));
    uv_signal_init(&c.loop, &c.sigint);
    uv_signal_init(&c.loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);
    uv_unref((uv_handle_t *)&c.sigint);
    uv_unref((uv_handle_t *)&c.sigterm);

    const img_job *j = img_runner_job(c.runner, c.id);
    while (j != NULL && (j->state == IMG_JOB_QUEUED || j->state == IMG_JOB_RUNNING)) {
        uv_run(&c.loop, UV_RUN_ONCE);
        j = img_runner_job(c.runner, c.id);
    }
    clear_line(&c);
    if (j == NULL) {
        fprintf(stderr, "genai image: the job disappeared\n");
    } else if (j->state == IMG_JOB_SUCCEEDED) {
        status = report_success(&c, j, img_runner_info(c.runner, c.id), a.out);
    } else {
        status = report_failure(&c, j, img_runner_info(c.runner, c.id));
    }
    uv_close((uv_handle_t *)&c.sigint, NULL);
    uv_close((uv_handle_t *)&c.sigterm, NULL);
out:
    img_runner_free(c.runner);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    store_model_free(&a.reg);
    return status;
}
