/*
 * fake_sd_cli.c - a test double of stable-diffusion.cpp's sd-cli (master-827).
 *
 * It follows contracts/stable-diffusion-cpp.md byte for byte where genai looks:
 * the flags (and the removed and deprecated ones), the log format and which
 * stream each level goes to, the weight-loading and sampling progress bars
 * with their CR and ESC[K, the params memory line and (with -v) the buffer
 * lines computed from the flags and the resolution (contracts/memory.md §9),
 * the PNG files and their names, the failure texts and the exit statuses.
 *
 * Instead of weights it reads a small "fake model" text file (see
 * docs/sd-double.md): module sizes, tensor counts and compute coefficients,
 * or the same text in the "fake_sd_model" metadata entry of a safetensors
 * file (so a file with a real family's tensor layout, which genai reads for
 * detection, can run). A file that is neither is "unknown model type", as a
 * real sd-cli says of any file it does not recognise.
 *
 * GPU memory: when GENAI_FAKE_GPU names a fake GPU file (src/sys/fakegpu.h),
 * every module runs on device 0 unless --backend moves it to the CPU, and the
 * double allocates, as each module is first used, its params (unless they are
 * offloaded to RAM) and its compute buffer. It holds the high-water mark until
 * it exits, which is what decides whether a run fits. A refused allocation
 * prints ggml-cuda's and sd.cpp's out-of-memory lines and fails as the real
 * program does (SIGABRT for the text encoder's weights, exit 1 otherwise).
 *
 * Switches (environment, documented in docs/sd-double.md):
 *   FAKE_SD_VERSION=master-611-abcdef0  the build it pretends to be; older
 *                                       builds refuse newer flags
 *   FAKE_SD_STEP_MS=n                   each sampling step takes n ms
 *   FAKE_SD_CRASH_AT_STEP=k             die at overall sampling step k ...
 *   FAKE_SD_CRASH_SIGNAL=n              ... by signal n (default SIGSEGV), or
 *   FAKE_SD_CRASH_EXIT=n                ... with exit status n
 *   FAKE_SD_HANG_AT_STEP=k              stop at step k (0: before loading)
 *                                       and wait for a signal forever
 *   FAKE_SD_GPU_HOLD_MS=n               GPU memory still counts n ms after exit
 *   FAKE_SD_PID_FILE=path               write the pid there at start
 *   FAKE_SD_IGNORE_TERM=1               ignore SIGTERM (escalation tests)
 */
#include "sd_png_write.h"

#include "core/alloc.h"
#include "sys/fakegpu.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

/* ---------------------------------------------------------------- logging */

enum level { L_DEBUG, L_INFO, L_WARN, L_ERROR };

static int verbose;

/* "[%-5s] <file>:<line %-4d> - <message>\n"; ERROR on stderr, the rest on
 * stdout; DEBUG only with -v; each line flushed. */
static void sdlog(enum level lv, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sdlog(enum level lv, const char *file, int line, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (lv == L_DEBUG && !verbose)
        return;
    char msg[4097];
    int n = snprintf(msg, sizeof(msg) - 1, "%s:%-4d - ", file, line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(msg) - 1)
        vsnprintf(msg + n, sizeof(msg) - 1 - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    if (len == 0 || msg[len - 1] != '\n') {
        msg[len] = '\n';
        msg[len + 1] = '\0';
    }
    FILE *out = lv == L_ERROR ? stderr : stdout;
    fprintf(out, "[%-5s] %s", names[lv], msg);
    fflush(out);
}

/* ---------------------------------------------------------------- version */

static char version_text[128] = "master-827-97d2990";
static char commit_text[16] = "97d29908";
static unsigned version_count = 827;

static void load_version(void)
{
    const char *v = getenv("FAKE_SD_VERSION");
    if (v == NULL || v[0] == '\0')
        return;
    snprintf(version_text, sizeof(version_text), "%s", v);
    const char *d2 = strrchr(v, '-');
    if (d2 == NULL || d2 == v)
        return;
    const char *d1 = d2 - 1;
    while (d1 > v && *d1 != '-')
        d1--;
    version_count = (unsigned)strtoul(d1 + 1, NULL, 10);
    snprintf(commit_text, sizeof(commit_text), "%.7s0", d2 + 1);
}

static void print_version(void)
{
    printf("stable-diffusion.cpp version %s, commit %s\n", version_text, commit_text);
}

/* ------------------------------------------------------------------ flags */

/* Value kinds, as sd.cpp's option tables: S string, I int (std::stoi),
 * L int64 (std::stoll), F float (std::stof), B bool, E enum checked by a
 * callback, H help, D --list-devices. */
struct flag {
    const char *sname, *lname;
    char kind;
    unsigned since, until; /* accepted when since <= count < until (0 = open) */
};

static const struct flag flags[] = {
    /* CLI options */
    {"-o", "--output", 'S', 0, 0},
    {"", "--image", 'S', 0, 0},
    {"", "--metadata-format", 'S', 0, 0},
    {"", "--preview-path", 'S', 0, 0},
    {"", "--imat-out", 'S', 0, 0},
    {"", "--preview-interval", 'I', 0, 0},
    {"", "--output-begin-idx", 'I', 0, 0},
    {"", "--canny", 'B', 0, 0},
    {"", "--convert-name", 'B', 0, 0},
    {"-v", "--verbose", 'B', 0, 0},
    {"", "--color", 'B', 0, 0},
    {"", "--taesd-preview-only", 'B', 0, 0},
    {"", "--preview-noisy", 'B', 0, 0},
    {"-M", "--mode", 'E', 0, 0},
    {"", "--preview", 'E', 0, 0},
    {"-h", "--help", 'H', 0, 0},
    {"", "--imat-in", 'S', 0, 0},
    /* Context options */
    {"-m", "--model", 'S', 0, 0},
    {"", "--clip_l", 'S', 0, 0},
    {"", "--clip_g", 'S', 0, 0},
    {"", "--clip_vision", 'S', 0, 0},
    {"", "--t5xxl", 'S', 0, 0},
    {"", "--llm", 'S', 0, 0},
    {"", "--llm_vision", 'S', 0, 0},
    {"", "--qwen2vl", 'S', 0, 0},
    {"", "--qwen2vl_vision", 'S', 0, 0},
    {"", "--diffusion-model", 'S', 0, 0},
    {"", "--high-noise-diffusion-model", 'S', 0, 0},
    {"", "--vae", 'S', 0, 0},
    {"", "--taesd", 'S', 0, 0},
    {"", "--tae", 'S', 0, 0},
    {"", "--control-net", 'S', 0, 0},
    {"", "--ip-adapter", 'S', 783, 0},
    {"", "--embd-dir", 'S', 0, 0},
    {"", "--lora-model-dir", 'S', 0, 0},
    {"", "--hires-upscalers-dir", 'S', 0, 0},
    {"", "--tensor-type-rules", 'S', 0, 0},
    {"", "--model-args", 'S', 765, 0},
    {"", "--photo-maker", 'S', 0, 0},
    {"", "--upscale-model", 'S', 0, 0},
    {"", "--backend", 'S', 611, 0},
    {"", "--params-backend", 'S', 611, 0},
    {"", "--split-mode", 'S', 747, 0},
    {"", "--rpc-servers", 'S', 0, 0},
    {"", "--max-vram", 'S', 596, 0},
    {"-t", "--threads", 'I', 0, 0},
    {"", "--stream-layers", 'B', 667, 0},
    {"", "--eager-load", 'B', 715, 0},
    {"", "--auto-fit", 'B', 747, 0},
    {"", "--offload-to-cpu", 'B', 0, 0},
    {"", "--mmap", 'B', 557, 0},
    {"", "--control-net-cpu", 'B', 0, 0},
    {"", "--clip-on-cpu", 'B', 0, 0},
    {"", "--vae-on-cpu", 'B', 0, 0},
    {"", "--fa", 'B', 557, 0},
    {"", "--diffusion-fa", 'B', 0, 0},
    {"", "--diffusion-conv-direct", 'B', 0, 0},
    {"", "--vae-conv-direct", 'B', 0, 0},
    {"", "--type", 'S', 0, 0},
    {"", "--rng", 'S', 0, 0},
    {"", "--sampler-rng", 'S', 0, 0},
    {"", "--prediction", 'S', 0, 0},
    {"", "--lora-apply-mode", 'S', 0, 0},
    {"", "--list-devices", 'D', 747, 0},
    /* Generation options */
    {"-p", "--prompt", 'S', 0, 0},
    {"-n", "--negative-prompt", 'S', 0, 0},
    {"-i", "--init-img", 'S', 0, 0},
    {"", "--end-img", 'S', 0, 0},
    {"", "--mask", 'S', 0, 0},
    {"", "--control-image", 'S', 0, 0},
    {"", "--ip-adapter-image", 'S', 783, 0},
    {"", "--ref-image-args", 'S', 0, 0},
    {"", "--pm-id-images-dir", 'S', 293, 0},
    {"", "--pm-id-embed-path", 'S', 293, 0},
    {"-H", "--height", 'I', 0, 0},
    {"-W", "--width", 'I', 0, 0},
    {"", "--steps", 'I', 0, 0},
    {"", "--clip-skip", 'I', 0, 0},
    {"-b", "--batch-count", 'I', 0, 0},
    {"", "--cfg-scale", 'F', 0, 0},
    {"", "--img-cfg-scale", 'F', 0, 0},
    {"", "--guidance", 'F', 0, 0},
    {"", "--eta", 'F', 0, 0},
    {"", "--strength", 'F', 0, 0},
    {"", "--control-strength", 'F', 0, 0},
    {"", "--ip-adapter-strength", 'F', 783, 0},
    {"", "--vae-tile-overlap", 'F', 0, 0},
    {"", "--increase-ref-index", 'B', 0, 0},
    {"", "--disable-auto-resize-ref-image", 'B', 0, 0},
    {"", "--disable-image-metadata", 'B', 0, 0},
    {"", "--vae-tiling", 'B', 0, 0},
    {"", "--hires", 'B', 0, 0},
    {"-s", "--seed", 'L', 0, 0},
    {"", "--sampling-method", 'E', 0, 0},
    {"", "--scheduler", 'E', 263, 0},
    {"", "--vae-tile-size", 'S', 0, 0},
    {"", "--cache-mode", 'S', 0, 0},
    {"", "--prompt-file", 'S', 0, 0},
    {"", "--negative-prompt-file", 'S', 0, 0},
    /* Removed flags, still known to the builds that had them (§2.4). */
    {"", "--schedule", 'E', 0, 263},
    {"", "--stacked-id-embd-dir", 'S', 0, 293},
    {"", "--input-id-images-dir", 'S', 0, 293},
    {"", "--normalize-input", 'B', 0, 301},
};

static const char *const samplers[] = {
    "euler",         "euler_a",        "heun",    "dpm2",         "dpm++2s_a",      "dpm++2m",
    "dpm++2mv2",     "ipndm",          "ipndm_v", "lcm",          "ddim_trailing",  "tcd",
    "res_multistep", "res_2s",         "er_sde",  "euler_cfg_pp", "euler_a_cfg_pp", "euler_ge",
    "dpm++2m_sde",   "dpm++2m_sde_bt", "lms",
};
static const char *const schedulers[] = {
    "discrete",     "karras",     "exponential", "ays",  "gits",         "sgm_uniform",
    "simple",       "smoothstep", "kl_optimal",  "lcm",  "bong_tangent", "ltx2",
    "logit_normal", "flux2",      "flux",        "beta", "normal",
};

static int in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v, list[i]) == 0)
            return 1;
    }
    return 0;
}

/* Parsed options: only those the double acts on. */
struct opts {
    const char *model, *diffusion_model, *clip_l, *clip_g, *t5xxl, *vae;
    const char *prompt, *negative;
    const char *output;
    const char *sampler, *scheduler;
    const char *mode;
    char backend[1024];
    char params_backend[1024];
    int width, height, steps, batch, begin_idx, threads;
    int64_t seed;
    double cfg;
    int offload, vae_tiling, diffusion_fa, fa, no_metadata;
    int warn_increase_ref, warn_auto_resize;
};

static void usage(const char *argv0)
{
    print_version();
    printf("Usage: %s [options]\n\n", argv0);
    printf("CLI Options:\n");
    printf("  -o, --output <string>            path to write result image to (default: "
           "./output.png)\n");
    printf("  -M, --mode                       run mode, one of [img_gen, adetailer, vid_gen, "
           "upscale, convert, metadata], default: img_gen\n");
    printf("  -v, --verbose                    print extra info\n");
    printf("  -h, --help                       show this help message and exit\n");
    printf("\nContext Options:\n");
    printf("  -m, --model <string>             path to full model\n");
    printf("  --backend <string>               runtime backend assignment, e.g. cpu or "
           "clip=cpu,vae=cuda0,diffusion=vulkan0\n");
    printf("\nGeneration Options:\n");
    printf("  -p, --prompt <string>            the prompt to render\n");
    printf("  (fake-sd-cli: a test double; see docs/sd-double.md)\n");
    fflush(stdout);
}

static void die_exception(const char *type, const char *what)
{
    fprintf(stderr, "terminate called after throwing an instance of '%s'\n  what():  %s\n", type,
            what);
    fflush(stderr);
    abort();
}

/* std::stoi / std::stoll: leading blanks, a sign, digits; trailing text is
 * ignored; no digits throws invalid_argument, overflow out_of_range. */
static long long std_stoll(const char *s, long long lo, long long hi, const char *fn)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s)
        die_exception("std::invalid_argument", fn);
    if (errno == ERANGE || v < lo || v > hi)
        die_exception("std::out_of_range", fn);
    return v;
}

static double std_stof(const char *s)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s)
        die_exception("std::invalid_argument", "stof");
    if (errno == ERANGE)
        die_exception("std::out_of_range", "stof");
    return v;
}

static void append_spec(char *dst, size_t dstsz, const char *prefix)
{
    char tmp[1024];
    if (dst[0] == '\0')
        snprintf(tmp, sizeof(tmp), "%s", prefix);
    else
        snprintf(tmp, sizeof(tmp), "%s,%s", prefix, dst);
    snprintf(dst, dstsz, "%s", tmp);
}

static void bad_argument(const char *argv0, const char *arg)
{
    sdlog(L_ERROR, "common.cpp", 320, "error: invalid parameter for argument: %s", arg);
    usage(argv0);
    exit(1);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->output = "./output.png";
    o->width = o->height = 512;
    o->steps = 20;
    o->batch = 1;
    o->seed = 42;
    o->cfg = 7.0;
    o->threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct flag *f = NULL;
        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
            const struct flag *c = &flags[k];
            if ((c->sname[0] && strcmp(arg, c->sname) == 0) || strcmp(arg, c->lname) == 0) {
                if (version_count >= c->since && (c->until == 0 || version_count < c->until))
                    f = c;
                break;
            }
        }
        if (f == NULL) {
            sdlog(L_ERROR, "common.cpp", 325, "error: unknown argument: %s", arg);
            usage(argv[0]);
            exit(1);
        }
        if (f->kind == 'H') {
            usage(argv[0]);
            exit(0);
        }
        if (f->kind == 'D') {
            const char *gpu = getenv("GENAI_FAKE_GPU");
            fakegpu_state st;
            if (gpu != NULL && gpu[0] != '\0' && fakegpu_read(gpu, &st, NULL) == 0) {
                for (uint32_t d = 0; d < st.n_devices; d++)
                    printf("CUDA%u\t%s\n", d, st.devices[d].name);
                fakegpu_state_free(&st);
            }
            printf("CPU\tCPU\n");
            exit(0);
        }
        if (f->kind == 'B') {
            const char *n = f->lname;
            if (strcmp(n, "--verbose") == 0)
                verbose = 1;
            else if (strcmp(n, "--offload-to-cpu") == 0)
                o->offload = 1;
            else if (strcmp(n, "--vae-tiling") == 0)
                o->vae_tiling = 1;
            else if (strcmp(n, "--diffusion-fa") == 0)
                o->diffusion_fa = 1;
            else if (strcmp(n, "--fa") == 0)
                o->fa = 1;
            else if (strcmp(n, "--disable-image-metadata") == 0)
                o->no_metadata = 1;
            else if (strcmp(n, "--clip-on-cpu") == 0)
                append_spec(o->backend, sizeof(o->backend), "te=cpu");
            else if (strcmp(n, "--vae-on-cpu") == 0)
                append_spec(o->backend, sizeof(o->backend), "vae=cpu");
            else if (strcmp(n, "--control-net-cpu") == 0)
                append_spec(o->backend, sizeof(o->backend), "controlnet=cpu");
            else if (strcmp(n, "--increase-ref-index") == 0)
                o->warn_increase_ref = 1;
            else if (strcmp(n, "--disable-auto-resize-ref-image") == 0)
                o->warn_auto_resize = 1;
            continue;
        }
        if (++i >= argc)
            bad_argument(argv[0], arg);
        const char *val = argv[i];
        const char *n = f->lname;
        if (f->kind == 'I') {
            int v = (int)std_stoll(val, INT_MIN, INT_MAX, "stoi");
            if (strcmp(n, "--width") == 0)
                o->width = v;
            else if (strcmp(n, "--height") == 0)
                o->height = v;
            else if (strcmp(n, "--steps") == 0)
                o->steps = v;
            else if (strcmp(n, "--batch-count") == 0)
                o->batch = v;
            else if (strcmp(n, "--output-begin-idx") == 0)
                o->begin_idx = v;
            else if (strcmp(n, "--threads") == 0)
                o->threads = v;
        } else if (f->kind == 'L') {
            o->seed = std_stoll(val, LLONG_MIN, LLONG_MAX, "stoll");
        } else if (f->kind == 'F') {
            double v = std_stof(val);
            if (strcmp(n, "--cfg-scale") == 0)
                o->cfg = v;
        } else if (f->kind == 'E') {
            if (strcmp(n, "--mode") == 0) {
                static const char *const modes[] = {"img_gen", "adetailer", "vid_gen",
                                                    "convert", "upscale",   "metadata"};
                int ok = in_list(val, modes, 6) ||
                         (version_count < 240 &&
                          (strcmp(val, "txt2img") == 0 || strcmp(val, "img2img") == 0));
                if (!ok) {
                    sdlog(L_ERROR, "main.cpp", 157,
                          "error: invalid mode %s, must be one of [img_gen, adetailer, "
                          "vid_gen, convert, upscale, metadata]\n",
                          val);
                    exit(1);
                }
                o->mode = val;
            } else if (strcmp(n, "--sampling-method") == 0) {
                if (!in_list(val, samplers, sizeof(samplers) / sizeof(samplers[0]))) {
                    sdlog(L_ERROR, "common.cpp", 1258, "error: invalid sample method %s", val);
                    bad_argument(argv[0], arg);
                }
                o->sampler = val;
            } else if (strcmp(n, "--scheduler") == 0 || strcmp(n, "--schedule") == 0) {
                if (!in_list(val, schedulers, sizeof(schedulers) / sizeof(schedulers[0]))) {
                    sdlog(L_ERROR, "common.cpp", 1285, "error: invalid scheduler %s", val);
                    bad_argument(argv[0], arg);
                }
                o->scheduler = strcmp(val, "normal") == 0 ? "discrete" : val;
            }
        } else {
            if (strcmp(n, "--model") == 0)
                o->model = val;
            else if (strcmp(n, "--diffusion-model") == 0)
                o->diffusion_model = val;
            else if (strcmp(n, "--clip_l") == 0)
                o->clip_l = val;
            else if (strcmp(n, "--clip_g") == 0)
                o->clip_g = val;
            else if (strcmp(n, "--t5xxl") == 0)
                o->t5xxl = val;
            else if (strcmp(n, "--vae") == 0)
                o->vae = val;
            else if (strcmp(n, "--prompt") == 0)
                o->prompt = val;
            else if (strcmp(n, "--negative-prompt") == 0)
                o->negative = val;
            else if (strcmp(n, "--output") == 0)
                o->output = val;
            else if (strcmp(n, "--backend") == 0)
                append_spec(o->backend, sizeof(o->backend), val);
            else if (strcmp(n, "--params-backend") == 0)
                append_spec(o->params_backend, sizeof(o->params_backend), val);
        }
    }
    if (o->mode != NULL && strcmp(o->mode, "img_gen") != 0 && strcmp(o->mode, "txt2img") != 0) {
        sdlog(L_ERROR, "main.cpp", 660, "fake-sd-cli: mode %s is not implemented by the double",
              o->mode);
        exit(1);
    }
    if (o->model == NULL && o->diffusion_model == NULL) {
        sdlog(L_ERROR, "common.cpp", 742,
              "error: the following arguments are required: model_path/diffusion_model\n");
        usage(argv[0]);
        exit(1);
    }
    if (o->offload)
        append_spec(o->params_backend, sizeof(o->params_backend), "*=cpu");
}

/* ------------------------------------------------------------- fake model */

struct model {
    char version[64];
    double te_mb, unet_mb, vae_mb, vae_decoder_mb;
    double total_mb; /* printed total when > 0: the real one sums unrounded sizes */
    unsigned te_tensors, unet_tensors, vae_tensors;
    double clip_compute_mb;
    double unet_heads, unet_attn_div, unet_linear_bpp, unet_fa_bpp, unet_const_mb;
    double vae_bpp;
    unsigned vae_ch;
    char missing_tensor[256];
    char truncated_tensor[256];
    int split_ok; /* works from --diffusion-model + components */
};

static void model_defaults(struct model *m)
{
    /* The reference model of contracts/stable-diffusion-cpp.md §9. */
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "SD 1.x");
    m->te_mb = 235.06;
    m->unet_mb = 19.85;
    m->vae_mb = 71.15;
    m->vae_decoder_mb = 5.94;
    m->te_tensors = 196;
    m->unet_tensors = 686;
    m->vae_tensors = 140;
    m->clip_compute_mb = 1.42;
    m->unet_heads = 8;
    m->unet_attn_div = 1;
    m->unet_linear_bpp = 18;
    m->unet_fa_bpp = 48.25;
    m->unet_const_mb = 0.76;
    m->total_mb = 326.07;
    m->vae_bpp = 1664;
    m->vae_ch = 32;
}

/* The "fake_sd_model" metadata text of a safetensors file (8-byte
 * little-endian header length, JSON header), mem_alloc'ed; NULL when f is
 * not such a file. */
static char *st_fake_meta(FILE *f)
{
    unsigned char len8[8];
    if (fseek(f, 0, SEEK_SET) != 0 || fread(len8, 1, 8, f) != 8)
        return NULL;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len8[i];
    if (n < 2 || n > (1u << 20))
        return NULL;
    char *hdr = mem_alloc((size_t)n);
    char *text = NULL;
    if (hdr != NULL && fread(hdr, 1, (size_t)n, f) == n) {
        json_t *o = json_loadb(hdr, (size_t)n, 0, NULL);
        const char *v =
            json_string_value(json_object_get(json_object_get(o, "__metadata__"), "fake_sd_model"));
        if (v != NULL)
            text = mem_strdup(v);
        json_decref(o);
    }
    mem_free(hdr);
    return text;
}

/* 1 when the file starts like a GGUF ("GGUF") or a safetensors file (a
 * little-endian header length, then '{'), the two formats the model loader
 * tells apart before it reads any tensor. */
static int known_format(const char *path)
{
    unsigned char head[9];
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(head, 1, sizeof(head), f);
    fclose(f);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        return 1;
    return n == sizeof(head) && head[8] == '{';
}

/* 0 ok, -ENOENT missing, -EINVAL not a fake model. */
static int model_load(const char *path, struct model *m)
{
    model_defaults(m);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -ENOENT;
    char line[512];
    char *meta = NULL;
    int rc = -EINVAL;
    if (fgets(line, sizeof(line), f) == NULL || strcmp(line, "fake-sd-model 1\n") != 0) {
        if ((meta = st_fake_meta(f)) == NULL)
            goto out;
        fclose(f);
        if ((f = fmemopen(meta, strlen(meta), "r")) == NULL) {
            mem_free(meta);
            return -EINVAL;
        }
    }
    rc = 0;
    for (int n = 0; n < 256 && fgets(line, sizeof(line), f) != NULL; n++) {
        line[strcspn(line, "\n")] = '\0';
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
        else if (strcmp(k, "vae_decoder_mb") == 0)
            m->vae_decoder_mb = d;
        else if (strcmp(k, "te_tensors") == 0)
            m->te_tensors = (unsigned)d;
        else if (strcmp(k, "unet_tensors") == 0)
            m->unet_tensors = (unsigned)d;
        else if (strcmp(k, "vae_tensors") == 0)
            m->vae_tensors = (unsigned)d;
        else if (strcmp(k, "clip_compute_mb") == 0)
            m->clip_compute_mb = d;
        else if (strcmp(k, "unet_heads") == 0)
            m->unet_heads = d;
        else if (strcmp(k, "unet_attn_div") == 0)
            m->unet_attn_div = d > 0 ? d : 1;
        else if (strcmp(k, "unet_linear_bpp") == 0)
            m->unet_linear_bpp = d;
        else if (strcmp(k, "unet_fa_bpp") == 0)
            m->unet_fa_bpp = d;
        else if (strcmp(k, "unet_const_mb") == 0)
            m->unet_const_mb = d;
        else if (strcmp(k, "vae_bpp") == 0)
            m->vae_bpp = d;
        else if (strcmp(k, "vae_ch") == 0)
            m->vae_ch = (unsigned)d;
        else if (strcmp(k, "missing_tensor") == 0)
            snprintf(m->missing_tensor, sizeof(m->missing_tensor), "%s", v);
        else if (strcmp(k, "truncated_tensor") == 0)
            snprintf(m->truncated_tensor, sizeof(m->truncated_tensor), "%s", v);
        else if (strcmp(k, "split_ok") == 0)
            m->split_ok = d != 0;
    }
out:
    fclose(f);
    mem_free(meta);
    return rc;
}

/* Compute buffers (MiB) per contracts/memory.md §9.2: the UNet's attention
 * scores ((W/8/div)(H/8/div))^2 x heads x 4 B without flash attention, plus a
 * linear term; the VAE linear in output pixels, capped at a 256x256 tile. */
static double unet_compute_mb(const struct model *m, int w, int h, int fa)
{
    double px = (double)w * h;
    if (fa)
        return m->unet_const_mb + px * m->unet_fa_bpp / MIB;
    double tokens = (w / 8.0 / m->unet_attn_div) * (h / 8.0 / m->unet_attn_div);
    return m->unet_const_mb + tokens * tokens * m->unet_heads * 4.0 / MIB +
           px * m->unet_linear_bpp / MIB;
}

static double vae_compute_mb(const struct model *m, int w, int h, int tiling)
{
    double px = (double)w * h;
    if (tiling && px > 256.0 * 256.0)
        px = 256.0 * 256.0;
    return px * m->vae_bpp / MIB;
}

/* -------------------------------------------------------------- placement */

enum module { M_TE, M_DIFF, M_VAE, M_COUNT };

struct placement {
    int runtime_gpu[M_COUNT]; /* module computes on the GPU */
    int params_gpu[M_COUNT];  /* module's params live in VRAM */
};

/* Module names of src/core/ggml_extend_backend.cpp, case and '-'/'_' ignored. */
static int module_of(const char *raw, int *all)
{
    char n[64];
    size_t j = 0;
    for (size_t i = 0; raw[i] && j + 1 < sizeof(n); i++) {
        char c = raw[i];
        if (c == '-' || c == '_' || c == ' ')
            continue;
        n[j++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    n[j] = '\0';
    *all = strcmp(n, "*") == 0;
    if (*all)
        return -1;
    static const char *const te[] = {"te",          "clip", "text", "textencoder", "textencoders",
                                     "conditioner", "cond", "llm",  "t5",          "t5xxl"};
    static const char *const diff[] = {"diffusion", "model", "unet", "dit"};
    static const char *const vae[] = {"vae", "firststage", "autoencoder", "tae"};
    if (in_list(n, te, sizeof(te) / sizeof(te[0])))
        return M_TE;
    if (in_list(n, diff, sizeof(diff) / sizeof(diff[0])))
        return M_DIFF;
    if (in_list(n, vae, sizeof(vae) / sizeof(vae[0])))
        return M_VAE;
    if (strcmp(n, "controlnet") == 0 || strcmp(n, "control") == 0)
        return M_COUNT; /* known, no effect here */
    return -2;
}

static int device_is_cpu(const char *dev)
{
    return strcasecmp(dev, "cpu") == 0 || strcasecmp(dev, "disk") == 0;
}

/* Applies a spec "dev" or "mod=dev,..." to on_gpu[]. Later entries win, and
 * prepended deprecated flags come first, as in sd.cpp. -1 on a bad module. */
static int apply_spec(const char *spec, int *on_gpu, char *bad, size_t badsz)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            for (int m = 0; m < M_COUNT; m++)
                on_gpu[m] = !device_is_cpu(tok);
            continue;
        }
        *eq = '\0';
        int all;
        int m = module_of(tok, &all);
        if (all) {
            for (int k = 0; k < M_COUNT; k++)
                on_gpu[k] = !device_is_cpu(eq + 1);
        } else if (m == -2) {
            snprintf(bad, badsz, "%s", tok);
            return -1;
        } else if (m < M_COUNT) {
            on_gpu[m] = !device_is_cpu(eq + 1);
        }
    }
    return 0;
}

/* --------------------------------------------------------------- fake GPU */

static const char *gpu_path;
static double gpu_held_mb; /* high-water mark allocated so far */
static int gpu_registered;

/* Raises the allocation to need_mb. 0, or GENAI_ENO_FIT with the bytes asked. */
static int gpu_reserve(double need_mb, double *asked_mb)
{
    if (gpu_path == NULL || need_mb <= gpu_held_mb)
        return 0;
    double delta = need_mb - gpu_held_mb;
    uint64_t bytes = (uint64_t)llround(delta * MIB);
    genai_error err;
    int rc = fakegpu_try_alloc(gpu_path, 0, (int32_t)getpid(), bytes, NULL, &err);
    if (rc == GENAI_ENO_FIT) {
        *asked_mb = delta;
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "fake-sd-cli: fake GPU %s: %s\n", gpu_path, err.detail);
        exit(70);
    }
    gpu_registered = 1;
    gpu_held_mb = need_mb;
    return 0;
}

/* Gives the memory back at exit, or keeps it counting hold_ms longer: the
 * release is stamped so that it takes effect hold_ms from now (a driver that
 * is slow to reclaim). */
static void gpu_release(void)
{
    if (gpu_path == NULL || !gpu_registered)
        return;
    const char *h = getenv("FAKE_SD_GPU_HOLD_MS");
    long hold = h ? strtol(h, NULL, 10) : 0;
    if (hold <= 0) {
        fakegpu_release(gpu_path, (int32_t)getpid(), NULL);
        return;
    }
    /* Counted for hold ms plus the device's release delay, in one locked step. */
    fakegpu_release_after(gpu_path, (int32_t)getpid(), (uint64_t)hold, NULL);
}

static void finish(int status)
{
    gpu_release();
    fflush(stdout);
    fflush(stderr);
    exit(status);
}

/* ------------------------------------------------------------ the switches */

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return dflt;
    return strtol(v, NULL, 10);
}

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void hang_forever(void)
{
    for (;;)
        pause();
}

static void write_pid_file(void)
{
    const char *path = getenv("FAKE_SD_PID_FILE");
    if (path == NULL || path[0] == '\0')
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    rename(tmp, path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------- bars */

/* One update: "\r  |<50 cells>| k/n - <speed>ESC[K" and "\n" at the last. */
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
    printf("\r  |%s| %i/%i - %s\033[K%s", cells, step, steps, speed, step == steps ? "\n" : "");
    fflush(stdout);
}

static void load_bars(double mb, unsigned tensors)
{
    double t0 = now_s();
    char speed[32];
    unsigned part = tensors / 3 > 0 ? tensors / 3 : 1;
    if (part < tensors) {
        snprintf(speed, sizeof(speed), "%.2fMB/s", mb / 3 / 0.05);
        bar(1, (int)part, (int)tensors, speed);
    }
    double dt = now_s() - t0 + 0.05;
    double rate = mb / dt;
    if (rate >= 1024)
        snprintf(speed, sizeof(speed), "%.2fGB/s", rate / 1024);
    else
        snprintf(speed, sizeof(speed), "%.2fMB/s", rate);
    bar(1, (int)tensors, (int)tensors, speed);
    sdlog(L_INFO, "model_loader.cpp", 1304,
          "loading tensors completed, taking %.2fs (read: %.2fs, memcpy: 0.00s, convert: 0.00s, "
          "copy_to_backend: 0.00s)",
          dt, dt);
}

static const char *loc(int on_gpu, double mb)
{
    if (mb <= 0)
        return "N/A";
    return on_gpu ? "VRAM" : "RAM";
}

/* ------------------------------------------------------------ OOM reports */

static void cuda_oom_line(double mb)
{
    sdlog(L_ERROR, "ggml_extend.hpp", 72,
          "ggml_backend_cuda_buffer_type_alloc_buffer: allocating %.2f MiB on device 0: "
          "cudaMalloc failed: out of memory",
          mb);
}

static void params_oom(const char *desc, double asked, double size_mb)
{
    cuda_oom_line(asked);
    sdlog(L_ERROR, "model_manager.cpp", 737,
          "model manager alloc params backend buffer failed, size = %.2fMB", size_mb);
    sdlog(L_ERROR, "ggml_extend.hpp", 1989, "%s prepare graph weights failed", desc);
}

static void compute_oom(const char *desc, double asked)
{
    cuda_oom_line(asked);
    sdlog(L_ERROR, "ggml_extend.hpp", 72,
          "ggml_gallocr_reserve_n_impl: failed to allocate CUDA0 buffer of size %llu",
          (unsigned long long)llround(asked * MIB));
    sdlog(L_ERROR, "ggml_extend.hpp", 2234, "%s: failed to allocate the compute buffer", desc);
    sdlog(L_ERROR, "ggml_extend.hpp", 2235, "%s alloc compute buffer failed", desc);
}

/* The text encoder returns nothing and the conditioner asserts (OBS on CPU). */
static void te_abort(void)
{
    fprintf(stderr, "/src/stable-diffusion.cpp/src/conditioner.hpp:467: "
                    "GGML_ASSERT(!chunk_hidden_states.empty()) failed\n");
    fflush(stderr);
    abort();
}

static void sampling_failed(int image, int images, double t0)
{
    sdlog(L_ERROR, "stable-diffusion.cpp", 3118, "diffusion model compute failed");
    sdlog(L_ERROR, "stable-diffusion.cpp", 3941, "Diffusion model sampling failed");
    sdlog(L_ERROR, "stable-diffusion.cpp", 5706, "sampling for image %d/%d failed after %.2fs",
          image, images, now_s() - t0);
    sdlog(L_ERROR, "main.cpp", 952, "generate failed");
    finish(1);
}

/* ----------------------------------------------------------------- output */

static int has_specifier(const char *s)
{
    for (const char *p = s; (p = strchr(p, '%')) != NULL; p++) {
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q == 'd')
            return 1;
    }
    return 0;
}

/* Formats every %<digits>d with idx and turns %% into %. */
static void format_index(const char *pattern, int idx, char *out, size_t outsz)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < outsz; p++) {
        if (*p == '%') {
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q == 'd' && q - p <= 4) {
                /* %d, %3d, %03d: width and zero padding, as printf. */
                char num[32];
                int zero = p[1] == '0';
                int width = (int)strtol(p + 1, NULL, 10);
                if (zero)
                    snprintf(num, sizeof(num), "%0*d", width, idx);
                else
                    snprintf(num, sizeof(num), "%*d", width, idx);
                for (const char *n = num; *n && o + 1 < outsz; n++)
                    out[o++] = *n;
                p = q;
                continue;
            }
            if (p[1] == '%')
                p++;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
}

static int mkdirs(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return n == len && rc == 0 ? 0 : -1;
}

static const char *sampler_display(const char *s)
{
    static const char *const map[][2] = {
        {"euler_a", "Euler A"},
        {"euler", "Euler"},
        {"heun", "Heun"},
        {"dpm2", "DPM2"},
        {"dpm++2s_a", "DPM++ (2s)"},
        {"dpm++2m", "DPM++ (2M)"},
        {"lcm", "LCM"},
        {"ddim_trailing", "DDIM \"trailing\""},
        {"tcd", "TCD"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(s, map[i][0]) == 0)
            return map[i][1];
    }
    return s;
}

/* Writes the images, as examples/cli/main.cpp save_results does. */
static int save_results(const struct opts *o, const struct model *m, int w, int h, int64_t seed)
{
    const char *out = o->output;
    const char *slash = strrchr(out, '/');
    if (slash != NULL && slash != out) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - out), out);
        int rc = mkdirs(dir);
        if (rc < 0) {
            sdlog(L_ERROR, "main.cpp", 452, "failed to create directory '%s': %s", dir,
                  strerror(-rc));
            return -1;
        }
    }
    /* A recognised extension is split off; anything else gets ".png". */
    const char *base_end = out + strlen(out);
    const char *ext = ".png";
    const char *dot = strrchr(out, '.');
    if (dot != NULL && (slash == NULL || dot > slash) && dot != (slash ? slash + 1 : out)) {
        if (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
            strcasecmp(dot, ".jpeg") == 0 || strcasecmp(dot, ".webp") == 0) {
            base_end = dot;
            ext = dot;
        }
    }
    size_t npx = (size_t)w * (size_t)h * 3;
    uint8_t *rgb = mem_alloc(npx);
    if (rgb == NULL)
        return -1;
    int saved = 0;
    for (int i = 0; i < o->batch; i++) {
        char path[4096];
        int idx = (o->begin_idx < 0 ? 0 : o->begin_idx) + i;
        if (has_specifier(out)) {
            char pattern[4096];
            snprintf(pattern, sizeof(pattern), "%.*s%s", (int)(base_end - out), out, ext);
            format_index(pattern, idx, path, sizeof(path));
        } else if (o->batch > 1) {
            snprintf(path, sizeof(path), "%.*s_%d%s", (int)(base_end - out), out, idx, ext);
        } else {
            snprintf(path, sizeof(path), "%.*s%s", (int)(base_end - out), out, ext);
        }
        char params[8192];
        snprintf(params, sizeof(params),
                 "%s\nNegative prompt: %s\nSteps: %d, CFG scale: %.6f, Seed: %lld, Size: %dx%d, "
                 "Model: %s, RNG: cuda, Sampler: %s %s, Version: stable-diffusion.cpp",
                 o->prompt ? o->prompt : "", o->negative ? o->negative : "", o->steps, o->cfg,
                 (long long)(seed + i), w, h, o->model ? o->model : o->diffusion_model,
                 o->sampler ? o->sampler : "euler_a", o->scheduler ? o->scheduler : "discrete");
        sdpng_fill_pattern(rgb, (uint32_t)w, (uint32_t)h, (uint64_t)(seed + i));
        uint8_t *png = NULL;
        size_t png_len = 0;
        int ok =
            sdpng_encode_rgb(rgb, (uint32_t)w, (uint32_t)h, o->no_metadata ? NULL : "parameters",
                             params, &png, &png_len) == 0 &&
            write_file(path, png, png_len) == 0;
        mem_free(png);
        sdlog(L_INFO, "main.cpp", 490, "save result image %d to '%s' (%s)", i, path,
              ok ? "success" : "failure");
        saved += ok;
    }
    mem_free(rgb);
    (void)m;
    sdlog(L_INFO, "main.cpp", 562, "%d/%d images saved", saved, o->batch);
    return saved > 0 ? 0 : -1;
}

/* ------------------------------------------------------------------- main */

static void context_failed(void)
{
    sdlog(L_INFO, "main.cpp", 910, "new_sd_ctx_t failed");
    finish(1);
}

int main(int argc, char **argv)
{
    load_version();
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        print_version();
        return 0;
    }
    write_pid_file();
    /* Not sd-cli's behaviour (it dies at SIGTERM): lets tests drive the
     * supervisor's escalation to SIGKILL. */
    if (env_long("FAKE_SD_IGNORE_TERM", 0) == 1)
        signal(SIGTERM, SIG_IGN);
    struct opts o;
    parse_args(argc, argv, &o);
    if (o.warn_auto_resize)
        sdlog(L_WARN, "common.cpp", 2548,
              "Notice: --disable-auto-resize-ref-image is deprecated. Use --ref-image-args "
              "\"resize_before_vae=off\" instead.");
    if (o.warn_increase_ref)
        sdlog(L_WARN, "common.cpp", 2556,
              "Notice: --increase-ref-index is deprecated. Use --ref-image-args "
              "\"ref_index_mode=increase\" instead.");

    long hang_at = env_long("FAKE_SD_HANG_AT_STEP", -1);
    long crash_at = env_long("FAKE_SD_CRASH_AT_STEP", -1);
    long step_ms = env_long("FAKE_SD_STEP_MS", 0);
    if (hang_at == 0)
        hang_forever();

    const char *g = getenv("GENAI_FAKE_GPU");
    gpu_path = g != NULL && g[0] != '\0' ? g : NULL;

    sdlog(L_DEBUG, "main.cpp", 689, "version: stable-diffusion.cpp version %s, commit %s",
          version_text, commit_text);
    sdlog(L_DEBUG, "main.cpp", 690, "System Info: \n    SSE3 = 1 |     AVX = 1 |     AVX2 = 1 |");
    sdlog(L_DEBUG, "main.cpp", 693,
          "SDGenerationParams {\n  prompt: \"%s\",\n  negative_prompt: \"%s\",\n  width: %d,\n"
          "  height: %d,\n  batch_count: %d,\n  seed: %lld,\n}",
          o.prompt ? o.prompt : "", o.negative ? o.negative : "", o.width, o.height, o.batch,
          (long long)o.seed);

    /* new_sd_ctx: read the model, detect the version, validate, report params. */
    const char *mpath = o.model ? o.model : o.diffusion_model;
    struct model m;
    if (o.model)
        sdlog(L_INFO, "stable-diffusion.cpp", 713, "loading model from '%s'", o.model);
    else
        sdlog(L_INFO, "stable-diffusion.cpp", 741, "loading diffusion model from '%s'",
              o.diffusion_model);
    int mrc = model_load(mpath, &m);
    if (mrc == -ENOENT) {
        sdlog(L_WARN, "model_loader.cpp", 254, "file %s not found", mpath);
        sdlog(L_ERROR, "stable-diffusion.cpp", 715, "init model loader from file failed: '%s'",
              mpath);
        sdlog(L_ERROR, "stable-diffusion.cpp", 905, "get sd version from file failed: '%s'", mpath);
        context_failed();
    }
    if (mrc != 0 && !known_format(mpath)) {
        /* Neither safetensors nor GGUF (master-827, OBS with a text file). */
        sdlog(L_WARN, "model_loader.cpp", 252, "unknown format %s", mpath);
        sdlog(L_ERROR, "stable-diffusion.cpp", 715, "init model loader from file failed: '%s'",
              mpath);
        sdlog(L_ERROR, "stable-diffusion.cpp", 905, "get sd version from file failed: '%s'", mpath);
        context_failed();
    }
    const char *fmt = strstr(mpath, ".gguf") ? "gguf" : "safetensors";
    sdlog(L_INFO, "model_loader.cpp", 242, "load %s using %s format", mpath, fmt);
    if (mrc == 0 && m.truncated_tensor[0]) {
        sdlog(L_ERROR, "model_loader.cpp", 321, "data offsets out of bounds for tensor '%s'",
              m.truncated_tensor);
        sdlog(L_ERROR, "stable-diffusion.cpp", 715, "init model loader from file failed: '%s'",
              mpath);
        mrc = -EINVAL;
    }
    if (mrc != 0) {
        sdlog(L_ERROR, "stable-diffusion.cpp", 905, "get sd version from file failed: '%s'", mpath);
        context_failed();
    }
    const char *comps[][2] = {
        {"clip_l", o.clip_l}, {"clip_g", o.clip_g}, {"t5xxl", o.t5xxl}, {"vae", o.vae}};
    for (size_t i = 0; i < 4; i++) {
        if (comps[i][1] == NULL)
            continue;
        sdlog(L_INFO, "stable-diffusion.cpp", 760, "loading %s from '%s'", comps[i][0],
              comps[i][1]);
        if (access(comps[i][1], R_OK) != 0) {
            sdlog(L_WARN, "model_loader.cpp", 254, "file %s not found", comps[i][1]);
            sdlog(L_ERROR, "stable-diffusion.cpp", 763, "init model loader from file failed: '%s'",
                  comps[i][1]);
            context_failed();
        }
    }
    if (o.model == NULL && !m.split_ok) {
        /* SD 1.x needs a full checkpoint: version detection fails (OBS). */
        sdlog(L_ERROR, "stable-diffusion.cpp", 905, "get sd version from file failed: ''");
        context_failed();
    }
    sdlog(L_INFO, "stable-diffusion.cpp", 908, "Version: %s ", m.version);
    sdlog(L_INFO, "stable-diffusion.cpp", 959,
          "Weight type stat:                      f32: 702  |     f16: 428  ");
    sdlog(L_INFO, "stable-diffusion.cpp", 960,
          "Conditioner weight type stat:          f32: 122  |     f16: 74   ");
    sdlog(L_INFO, "stable-diffusion.cpp", 961,
          "Diffusion model weight type stat:      f32: 404  |     f16: 282  ");
    sdlog(L_INFO, "stable-diffusion.cpp", 962,
          "VAE weight type stat:                  f32: 176  |     f16: 72   ");
    sdlog(L_INFO, "stable-diffusion.cpp", 1512, "using VAE for encoding / decoding");
    sdlog(L_INFO, "auto_encoder_kl.hpp", 527, "vae decoder: ch = %u", m.vae_ch);
    if (m.missing_tensor[0]) {
        sdlog(L_ERROR, "model_manager.cpp", 640,
              "Diffusion model tensor '%s' not in model metadata", m.missing_tensor);
        sdlog(L_ERROR, "stable-diffusion.cpp", 1693, "model metadata validation failed");
        context_failed();
    }

    struct placement pl;
    int on_gpu[M_COUNT], params_gpu[M_COUNT];
    char bad[128];
    for (int i = 0; i < M_COUNT; i++)
        on_gpu[i] = gpu_path != NULL;
    if (apply_spec(o.backend, on_gpu, bad, sizeof(bad)) < 0) {
        sdlog(L_ERROR, "stable-diffusion.cpp", 1402, "invalid backend module '%s'", bad);
        context_failed();
    }
    for (int i = 0; i < M_COUNT; i++) {
        on_gpu[i] = on_gpu[i] && gpu_path != NULL;
        params_gpu[i] = on_gpu[i];
    }
    if (apply_spec(o.params_backend, params_gpu, bad, sizeof(bad)) < 0) {
        sdlog(L_ERROR, "stable-diffusion.cpp", 1402, "invalid backend module '%s'", bad);
        context_failed();
    }
    for (int i = 0; i < M_COUNT; i++) {
        pl.runtime_gpu[i] = on_gpu[i];
        pl.params_gpu[i] = params_gpu[i] && on_gpu[i];
    }
    double sizes[M_COUNT] = {m.te_mb, m.unet_mb, m.vae_mb};
    double total = m.total_mb > 0 ? m.total_mb : sizes[0] + sizes[1] + sizes[2], vram = 0;
    for (int i = 0; i < M_COUNT; i++)
        vram += pl.params_gpu[i] ? sizes[i] : 0;
    sdlog(L_INFO, "stable-diffusion.cpp", 1745,
          "total params memory size = %.2fMB (VRAM %.2fMB, RAM %.2fMB): text_encoders %.2fMB(%s), "
          "diffusion_model %.2fMB(%s), vae %.2fMB(%s), controlnet 0.00MB(N/A), extensions "
          "0.00MB(N/A)",
          total, vram, total - vram, sizes[0], loc(pl.params_gpu[M_TE], sizes[0]), sizes[1],
          loc(pl.params_gpu[M_DIFF], sizes[1]), sizes[2], loc(pl.params_gpu[M_VAE], sizes[2]));
    sdlog(L_INFO, "stable-diffusion.cpp", 1849, "running in eps-prediction mode");

    /* generate_image */
    double t_start = now_s();
    int w = o.width > 0 ? (o.width + 63) / 64 * 64 : 512;
    int h = o.height > 0 ? (o.height + 63) / 64 * 64 : 512;
    if (w != o.width || h != o.height)
        sdlog(L_WARN, "stable-diffusion.cpp", 4154,
              "align generation request up %dx%d to %dx%d (multiple=64)", o.width, o.height, w, h);
    int steps = o.steps < 1 ? 1 : o.steps;
    int batch = o.batch < 1 ? 1 : o.batch;
    o.batch = batch;
    int64_t seed = o.seed;
    if (seed < 0) {
        srand((unsigned)time(NULL));
        seed = rand();
    }
    sdlog(L_INFO, "stable-diffusion.cpp", 5628, "generate_image %dx%d", w, h);
    sdlog(L_INFO, "denoiser.hpp", 1051, "get_sigmas with %s scheduler",
          o.scheduler ? o.scheduler : "discrete");
    sdlog(L_INFO, "stable-diffusion.cpp", 4380, "sampling using %s method",
          sampler_display(o.sampler ? o.sampler : "euler_a"));

    const char *rloc[2] = {"RAM", "VRAM"};
    double need = 0, asked = 0;
    double resident = 0; /* params kept in VRAM so far */

    /* Text encoder: weights (lazy), compute, one or two passes. */
    sdlog(L_DEBUG, "model_manager.cpp", 406,
          "model manager prepared params backend buffer (%.2f MB, %u tensors, %s)", m.te_mb,
          m.te_tensors, rloc[pl.params_gpu[M_TE]]);
    if (pl.params_gpu[M_TE])
        resident += m.te_mb;
    need = resident + (pl.runtime_gpu[M_TE] && !pl.params_gpu[M_TE] ? m.te_mb : 0);
    if (gpu_reserve(need, &asked) < 0) {
        params_oom("clip", asked, m.te_mb);
        te_abort();
    }
    load_bars(m.te_mb, m.te_tensors);
    sdlog(L_DEBUG, "ggml_extend.hpp", 2241, "clip compute buffer size: %.2f MB(%s)",
          m.clip_compute_mb, rloc[pl.runtime_gpu[M_TE]]);
    if (pl.runtime_gpu[M_TE] && gpu_reserve(need + m.clip_compute_mb, &asked) < 0) {
        compute_oom("clip", asked);
        te_abort();
    }
    sdlog(L_INFO, "stable-diffusion.cpp", 5296, "get_learned_condition completed, taking %.2fs",
          now_s() - t_start);

    /* Diffusion model: each image, each step. */
    double t_sampling = now_s();
    double unet_c = unet_compute_mb(&m, w, h, o.diffusion_fa || o.fa);
    long overall = 0;
    for (int img = 1; img <= batch; img++) {
        double t_img = now_s();
        sdlog(L_INFO, "stable-diffusion.cpp", 5679, "generating image: %d/%d - seed %lld", img,
              batch, (long long)(seed + img - 1));
        if (img == 1) {
            sdlog(L_DEBUG, "model_manager.cpp", 406,
                  "model manager prepared params backend buffer (%.2f MB, %u tensors, %s)",
                  m.unet_mb, m.unet_tensors, rloc[pl.params_gpu[M_DIFF]]);
            if (pl.params_gpu[M_DIFF])
                resident += m.unet_mb;
            need = resident + (pl.runtime_gpu[M_DIFF] && !pl.params_gpu[M_DIFF] ? m.unet_mb : 0);
            if (gpu_reserve(need, &asked) < 0) {
                params_oom("unet", asked, m.unet_mb);
                sampling_failed(img, batch, t_img);
            }
            load_bars(m.unet_mb, m.unet_tensors);
            sdlog(L_DEBUG, "ggml_extend.hpp", 2241, "unet compute buffer size: %.2f MB(%s)", unet_c,
                  rloc[pl.runtime_gpu[M_DIFF]]);
            if (pl.runtime_gpu[M_DIFF] && gpu_reserve(need + unet_c, &asked) < 0) {
                compute_oom("unet", asked);
                sampling_failed(img, batch, t_img);
            }
        }
        double t_prev = now_s();
        for (int k = 1; k <= steps; k++) {
            overall++;
            if (hang_at == overall)
                hang_forever();
            if (crash_at == overall) {
                long code = env_long("FAKE_SD_CRASH_EXIT", -1);
                if (code >= 0)
                    finish((int)code);
                int sig = (int)env_long("FAKE_SD_CRASH_SIGNAL", SIGSEGV);
                signal(sig, SIG_DFL);
                raise(sig);
                hang_forever();
            }
            sleep_ms(step_ms);
            double t = now_s(), dt = t - t_prev > 0.001 ? t - t_prev : 0.001;
            t_prev = t;
            char speed[32];
            if (dt < 1.0)
                snprintf(speed, sizeof(speed), "%.2fit/s", 1.0 / dt);
            else
                snprintf(speed, sizeof(speed), "%.2fs/it", dt);
            bar(0, k, steps, speed);
        }
        sdlog(L_INFO, "stable-diffusion.cpp", 5711, "sampling completed, taking %.2fs",
              now_s() - t_img);
    }
    sdlog(L_INFO, "stable-diffusion.cpp", 5723,
          "generating %d latent images completed, taking %.2fs", batch, now_s() - t_sampling);

    /* VAE: decoder weights, compute, tiles. */
    double t_dec = now_s();
    sdlog(L_INFO, "stable-diffusion.cpp", 5321, "decoding %d latents", batch);
    sdlog(L_DEBUG, "model_manager.cpp", 406,
          "model manager prepared params backend buffer (%.2f MB, %u tensors, %s)",
          m.vae_decoder_mb, m.vae_tensors, rloc[pl.params_gpu[M_VAE]]);
    if (pl.params_gpu[M_VAE])
        resident += m.vae_decoder_mb;
    need = resident + (pl.runtime_gpu[M_VAE] && !pl.params_gpu[M_VAE] ? m.vae_decoder_mb : 0);
    if (gpu_reserve(need, &asked) < 0) {
        params_oom("vae", asked, m.vae_decoder_mb);
        sdlog(L_ERROR, "stable-diffusion.cpp", 5330, "decode_first_stage failed");
        sdlog(L_ERROR, "main.cpp", 952, "generate failed");
        finish(1);
    }
    load_bars(m.vae_decoder_mb, m.vae_tensors);
    double vae_c = vae_compute_mb(&m, w, h, o.vae_tiling);
    sdlog(L_DEBUG, "ggml_extend.hpp", 2241, "vae compute buffer size: %.2f MB(%s)", vae_c,
          rloc[pl.runtime_gpu[M_VAE]]);
    if (pl.runtime_gpu[M_VAE] && gpu_reserve(need + vae_c, &asked) < 0) {
        compute_oom("vae", asked);
        sdlog(L_ERROR, "stable-diffusion.cpp", 5330, "decode_first_stage failed");
        sdlog(L_ERROR, "main.cpp", 952, "generate failed");
        finish(1);
    }
    for (int img = 1; img <= batch; img++) {
        if (o.vae_tiling) {
            int lw = w / 8, lh = h / 8;
            int tiles = ((lw + 15) / 16) * ((lh + 15) / 16);
            if (tiles < 1)
                tiles = 1;
            for (int t = 1; t <= tiles; t++)
                bar(0, t, tiles, "99.00it/s");
        }
        sdlog(L_INFO, "stable-diffusion.cpp", 5387, "latent %d decoded, taking %.2fs", img,
              now_s() - t_dec);
    }
    sdlog(L_INFO, "stable-diffusion.cpp", 5391, "decode_first_stage completed, taking %.2fs",
          now_s() - t_dec);
    sdlog(L_INFO, "stable-diffusion.cpp", 5861, "generate_image completed in %.2fs",
          now_s() - t_start);

    int rc = save_results(&o, &m, w, h, seed);
    sdlog(L_DEBUG, "model_manager.cpp", 981,
          "model manager releasing params backend buffer (%.2f MB, %u tensors, %s)", m.te_mb,
          m.te_tensors, rloc[pl.params_gpu[M_TE]]);
    finish(rc == 0 ? 0 : 1);
    return 0;
}
