/*
 * request.c - request validation, seeds, the sd-cli argv and the private
 * output directory (see request.h).
 */
#include "image/request.h"

#include "core/alloc.h"
#include "core/paths.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* src/stable-diffusion.cpp sample_method_to_str[] and scheduler_to_str[] at
 * master-827; "normal" is sd.cpp's alias of "discrete". */
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

static int in_list(const char *name, const char *const *list, size_t n)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, list[i]) == 0)
            return 1;
    }
    return 0;
}

int img_sampler_known(const char *name)
{
    return in_list(name, samplers, sizeof(samplers) / sizeof(samplers[0]));
}

int img_scheduler_known(const char *name)
{
    return in_list(name, schedulers, sizeof(schedulers) / sizeof(schedulers[0]));
}

uint32_t img_request_width(const img_request *r)
{
    return r->width ? r->width : IMG_SIDE_DEFAULT;
}

uint32_t img_request_height(const img_request *r)
{
    return r->height ? r->height : IMG_SIDE_DEFAULT;
}

uint32_t img_request_steps(const img_request *r)
{
    return r->steps ? r->steps : IMG_STEPS_DEFAULT;
}

uint32_t img_request_batch(const img_request *r)
{
    return r->batch_count ? r->batch_count : 1;
}

static int check_path(const char *value, const char *field, genai_error *err)
{
    if (value == NULL)
        return 0;
    size_t n = strlen(value);
    if (n == 0 || n >= PATHS_MAX)
        return err_set(err, GENAI_EBAD_ARG, "%s: path must be 1..%d bytes", field, PATHS_MAX - 1);
    return 0;
}

static int check_side(uint32_t v, const char *field, genai_error *err)
{
    if (v == 0)
        return 0;
    if (v < IMG_SIDE_MIN || v > IMG_SIDE_MAX || v % 64 != 0)
        return err_set(err, GENAI_EBAD_ARG, "%s %u: must be a multiple of 64 in %u..%u", field, v,
                       IMG_SIDE_MIN, IMG_SIDE_MAX);
    return 0;
}

int img_request_validate(const img_request *r, genai_error *err)
{
    int rc;
    if (r == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no request");
    if ((r->model == NULL) == (r->diffusion_model == NULL))
        return err_set(err, GENAI_EBAD_ARG,
                       "model: give exactly one of a full checkpoint or a diffusion model");
    if ((rc = check_path(r->model, "model", err)) < 0 ||
        (rc = check_path(r->diffusion_model, "diffusion_model", err)) < 0 ||
        (rc = check_path(r->clip_l, "clip_l", err)) < 0 ||
        (rc = check_path(r->clip_g, "clip_g", err)) < 0 ||
        (rc = check_path(r->t5xxl, "t5xxl", err)) < 0 || (rc = check_path(r->vae, "vae", err)) < 0)
        return rc;
    if (r->prompt == NULL || r->prompt[0] == '\0')
        return err_set(err, GENAI_EBAD_ARG, "prompt: required");
    if (strlen(r->prompt) > IMG_PROMPT_MAX)
        return err_set(err, GENAI_EBAD_ARG, "prompt: longer than %u bytes", IMG_PROMPT_MAX);
    if (r->negative_prompt != NULL && strlen(r->negative_prompt) > IMG_PROMPT_MAX)
        return err_set(err, GENAI_EBAD_ARG, "negative_prompt: longer than %u bytes",
                       IMG_PROMPT_MAX);
    if ((rc = check_side(r->width, "width", err)) < 0 ||
        (rc = check_side(r->height, "height", err)) < 0)
        return rc;
    if (r->steps > IMG_STEPS_MAX)
        return err_set(err, GENAI_EBAD_ARG, "steps %u: must be 1..%u", r->steps, IMG_STEPS_MAX);
    if (r->has_cfg &&
        !(isfinite(r->cfg_scale) && r->cfg_scale >= 0.0 && r->cfg_scale <= IMG_CFG_MAX))
        return err_set(err, GENAI_EBAD_ARG, "cfg_scale: must be 0..%g", IMG_CFG_MAX);
    if (r->has_guidance &&
        !(isfinite(r->guidance) && r->guidance >= 0.0 && r->guidance <= IMG_GUIDANCE_MAX))
        return err_set(err, GENAI_EBAD_ARG, "guidance: must be 0..%g", IMG_GUIDANCE_MAX);
    if (r->settings_json != NULL && strlen(r->settings_json) > IMG_SETTINGS_MAX)
        return err_set(err, GENAI_EBAD_ARG, "settings: longer than %u bytes", IMG_SETTINGS_MAX);
    if (r->policy < 0 || r->policy > 2)
        return err_set(err, GENAI_EBAD_ARG,
                       "policy %d: must be 0 (the model's), 1 (adjust) "
                       "or 2 (strict)",
                       r->policy);
    if (r->has_seed && r->seed < 0)
        return err_set(err, GENAI_EBAD_ARG, "seed %" PRId64 ": must be 0..2^63-1", r->seed);
    if (r->sampler != NULL && !img_sampler_known(r->sampler))
        return err_set(err, GENAI_EBAD_ARG, "sampler '%s': unknown", r->sampler);
    if (r->scheduler != NULL && !img_scheduler_known(r->scheduler))
        return err_set(err, GENAI_EBAD_ARG, "scheduler '%s': unknown", r->scheduler);
    if (r->batch_count > IMG_BATCH_MAX)
        return err_set(err, GENAI_EBAD_ARG, "batch_count %u: must be 1..%u", r->batch_count,
                       IMG_BATCH_MAX);
    if (r->threads < -1 || r->threads > IMG_THREADS_MAX)
        return err_set(err, GENAI_EBAD_ARG, "threads %d: must be -1..%d", (int)r->threads,
                       IMG_THREADS_MAX);
    return 0;
}

int img_request_resolve_seed(img_request *r, genai_error *err)
{
    if (r->has_seed)
        return 0;
    uint32_t v;
    size_t got = 0;
    while (got < sizeof(v)) {
        ssize_t n = getrandom((char *)&v + got, sizeof(v) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, errno, "getrandom");
        }
        got += (size_t)n;
    }
    r->seed = (int64_t)(v & IMG_SEED_RANDOM_MASK);
    r->has_seed = 1;
    return 0;
}

int img_request_copy(img_request *dst, const img_request *src)
{
    img_request c = *src;
    const char *from[] = {src->model,     src->diffusion_model, src->clip_l,
                          src->clip_g,    src->t5xxl,           src->vae,
                          src->prompt,    src->negative_prompt, src->sampler,
                          src->scheduler, src->settings_json};
    char **to[] = {&c.model,  &c.diffusion_model, &c.clip_l,  &c.clip_g,    &c.t5xxl,        &c.vae,
                   &c.prompt, &c.negative_prompt, &c.sampler, &c.scheduler, &c.settings_json};
    size_t n = sizeof(to) / sizeof(to[0]);
    for (size_t i = 0; i < n; i++)
        *to[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (from[i] != NULL && (*to[i] = mem_strdup(from[i])) == NULL) {
            img_request_free(&c);
            return -ENOMEM;
        }
    }
    *dst = c;
    return 0;
}

void img_request_free(img_request *r)
{
    if (r == NULL)
        return;
    mem_free(r->model);
    mem_free(r->diffusion_model);
    mem_free(r->clip_l);
    mem_free(r->clip_g);
    mem_free(r->t5xxl);
    mem_free(r->vae);
    mem_free(r->prompt);
    mem_free(r->negative_prompt);
    mem_free(r->sampler);
    mem_free(r->scheduler);
    mem_free(r->settings_json);
    memset(r, 0, sizeof(*r));
}

/* Appends one string to the argv under construction (a NULL slot kept free). */
static int push(img_argv *a, size_t *cap, const char *s)
{
    if (a->argc + 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        char **nv = mem_reallocarray(a->argv, ncap, sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        a->argv = nv;
        *cap = ncap;
    }
    char *copy = mem_strdup(s);
    if (copy == NULL)
        return -ENOMEM;
    a->argv[a->argc++] = copy;
    a->argv[a->argc] = NULL;
    return 0;
}

static int push2(img_argv *a, size_t *cap, const char *flag, const char *value)
{
    int rc = push(a, cap, flag);
    return rc < 0 ? rc : push(a, cap, value);
}

static int push_u(img_argv *a, size_t *cap, const char *flag, long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", v);
    return push2(a, cap, flag, num);
}

int img_argv_build(const img_request *r, const img_sd_version *v, const char *bin,
                   const char *out_dir, img_argv *out, genai_error *err)
{
    int rc = img_request_validate(r, err);
    if (rc < 0)
        return rc;
    if (!r->has_seed)
        return err_set(err, GENAI_EBAD_ARG, "seed: resolve it before building the argv");
    if (bin == NULL || out_dir == NULL)
        return err_set(err, GENAI_EBAD_ARG, "no program or output directory");
    if (!img_version_at_least(v, IMG_SD_MIN_COUNT))
        return err_set(err, GENAI_EUNSUPPORTED,
                       "stable-diffusion.cpp %s-%u is older than master-%u, the oldest build "
                       "genai drives",
                       v->branch, v->count, IMG_SD_MIN_COUNT);
    char out_path[PATHS_MAX];
    if (img_output_path(out_dir, 1, 0, out_path, sizeof(out_path)) < 0)
        return err_set(err, -ENAMETOOLONG, "output directory '%s' is too long", out_dir);

    img_argv a = {NULL, 0};
    size_t cap = 0;
    rc = push(&a, &cap, bin);
    if (rc == 0 && r->model)
        rc = push2(&a, &cap, "-m", r->model);
    if (rc == 0 && r->diffusion_model)
        rc = push2(&a, &cap, "--diffusion-model", r->diffusion_model);
    if (rc == 0 && r->clip_l)
        rc = push2(&a, &cap, "--clip_l", r->clip_l);
    if (rc == 0 && r->clip_g)
        rc = push2(&a, &cap, "--clip_g", r->clip_g);
    if (rc == 0 && r->t5xxl)
        rc = push2(&a, &cap, "--t5xxl", r->t5xxl);
    if (rc == 0 && r->vae)
        rc = push2(&a, &cap, "--vae", r->vae);
    if (rc == 0)
        rc = push2(&a, &cap, "-p", r->prompt);
    if (rc == 0 && r->negative_prompt && r->negative_prompt[0])
        rc = push2(&a, &cap, "-n", r->negative_prompt);
    if (rc == 0)
        rc = push_u(&a, &cap, "-W", img_request_width(r));
    if (rc == 0)
        rc = push_u(&a, &cap, "-H", img_request_height(r));
    if (rc == 0)
        rc = push_u(&a, &cap, "--steps", img_request_steps(r));
    if (rc == 0 && r->has_cfg) {
        char num[32];
        snprintf(num, sizeof(num), "%.4g", r->cfg_scale);
        rc = push2(&a, &cap, "--cfg-scale", num);
    }
    if (rc == 0 && r->has_guidance) {
        char num[32];
        snprintf(num, sizeof(num), "%.4g", r->guidance);
        rc = push2(&a, &cap, "--guidance", num);
    }
    if (rc == 0)
        rc = push_u(&a, &cap, "-s", (long long)r->seed);
    if (rc == 0 && r->sampler)
        rc = push2(&a, &cap, "--sampling-method", r->sampler);
    if (rc == 0 && r->scheduler)
        rc = push2(&a, &cap,
                   img_version_at_least(v, IMG_SD_SCHEDULER_AT) ? "--scheduler" : "--schedule",
                   r->scheduler);
    if (rc == 0 && img_request_batch(r) > 1)
        rc = push_u(&a, &cap, "-b", img_request_batch(r));
    if (rc == 0 && r->threads != 0)
        rc = push_u(&a, &cap, "-t", r->threads);
    if (rc == 0 && (r->te_on_cpu || r->vae_on_cpu)) {
        if (img_version_at_least(v, IMG_SD_BACKEND_AT)) {
            const char *spec = r->te_on_cpu && r->vae_on_cpu ? "te=cpu,vae=cpu"
                               : r->te_on_cpu                ? "te=cpu"
                                                             : "vae=cpu";
            rc = push2(&a, &cap, "--backend", spec);
        } else {
            if (r->te_on_cpu)
                rc = push(&a, &cap, "--clip-on-cpu");
            if (rc == 0 && r->vae_on_cpu)
                rc = push(&a, &cap, "--vae-on-cpu");
        }
    }
    if (rc == 0 && r->vae_tiling)
        rc = push(&a, &cap, "--vae-tiling");
    if (rc == 0 && r->offload_to_cpu)
        rc = push(&a, &cap, "--offload-to-cpu");
    if (rc == 0 && r->diffusion_fa)
        rc = push(&a, &cap, "--diffusion-fa");
    if (rc == 0 && r->verbose)
        rc = push(&a, &cap, "-v");
    if (rc == 0)
        rc = push2(&a, &cap, "-o", out_path);
    if (rc < 0) {
        img_argv_free(&a);
        return err_set(err, rc, "building the sd-cli argv");
    }
    *out = a;
    return 0;
}

void img_argv_free(img_argv *a)
{
    if (a == NULL || a->argv == NULL)
        return;
    for (size_t i = 0; i < a->argc; i++)
        mem_free(a->argv[i]);
    mem_free(a->argv);
    a->argv = NULL;
    a->argc = 0;
}

int img_output_path(const char *out_dir, uint32_t batch_count, uint32_t index, char *buf,
                    size_t bufsz)
{
    int n;
    if (batch_count > 1)
        n = snprintf(buf, bufsz, "%s/out_%u.png", out_dir, index);
    else
        n = snprintf(buf, bufsz, "%s/out.png", out_dir);
    if (n < 0 || (size_t)n >= bufsz)
        return -ENAMETOOLONG;
    return 0;
}

int img_workdir_create(const char *parent, char *out, size_t outsz, genai_error *err)
{
    char tmpl[PATHS_MAX];
    int n = snprintf(tmpl, sizeof(tmpl), "%s/sd-XXXXXX", parent);
    if (n < 0 || (size_t)n >= sizeof(tmpl) || (size_t)n >= outsz)
        return err_set(err, -ENAMETOOLONG, "work directory under '%s' is too long", parent);
    /* mkdtemp creates the directory with mode 0700. */
    if (mkdtemp(tmpl) == NULL)
        return err_errno(err, errno, "creating a work directory under %s", parent);
    memcpy(out, tmpl, (size_t)n + 1);
    return 0;
}

int img_workdir_remove(const char *dir, genai_error *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) {
        if (errno == ENOENT)
            return 0;
        return err_errno(err, errno, "opening %s", dir);
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        return err_errno(err, e, "reading %s", dir);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT && rc == 0)
            rc = err_errno(err, errno, "removing %s/%s", dir, de->d_name);
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0 && errno != ENOENT)
        rc = err_errno(err, errno, "removing %s", dir);
    return rc;
}
