/*
 * request.h - one image-generation request, its validation, and the sd-cli
 * argv that runs it.
 *
 * A request names a model (a full checkpoint, or a diffusion model plus its
 * text encoders and VAE), the prompt and the sampling settings, and where the
 * modules go (text encoder or VAE on the CPU, VAE tiling, params offloaded to
 * RAM, flash attention in the diffusion model). The planner fills the
 * placement; the user fills the rest.
 *
 * Bounds (checked by img_request_validate, documented in docs/image-driver.md):
 * width and height multiples of 64 in 64..4096 (sd-server's advertised
 * limits; sd-cli silently aligns up, genai refuses instead so the caller gets
 * the size it asked for), steps 1..100 (sd-server's clamp), cfg-scale 0..30,
 * distilled guidance 0..30 (Flux dev's --guidance; contract §2.1 lists it at
 * master-827 with default 3.5, and genai passes it to every build it drives),
 * batch 1..8 (sd-server's max_batch_count), seed 0..2^63-1, threads -1..1024,
 * prompts up to 16 KiB, samplers and schedulers from master-827's lists.
 *
 * Flag spellings by build (contracts/stable-diffusion-cpp.md §2.2-2.4): text
 * encoder / VAE on the CPU are "--backend te=cpu,vae=cpu" from master-611 and
 * "--clip-on-cpu" / "--vae-on-cpu" before; the scheduler flag is "--scheduler"
 * from master-263 and "--schedule" before. Builds older than master-240 (the
 * img_gen mode) are refused. The mode flag is never passed: img_gen is the
 * default. "--color" is never passed.
 *
 * Ownership: img_request_copy() makes a deep copy that img_request_free()
 * releases; a request filled by hand with borrowed strings is never freed.
 */
#ifndef GENAI_IMAGE_REQUEST_H
#define GENAI_IMAGE_REQUEST_H

#include "core/error.h"
#include "image/binary.h"

#include <stddef.h>
#include <stdint.h>

#define IMG_SIDE_MIN 64u
#define IMG_SIDE_MAX 4096u
#define IMG_SIDE_DEFAULT 512u
#define IMG_STEPS_MAX 100u
#define IMG_STEPS_DEFAULT 20u
#define IMG_CFG_MAX 30.0
#define IMG_GUIDANCE_MAX 30.0
#define IMG_SETTINGS_MAX 65536u /* bytes of a settings override */
#define IMG_BATCH_MAX 8u
#define IMG_THREADS_MAX 1024
#define IMG_PROMPT_MAX 16384u
#define IMG_SEED_RANDOM_MASK 0x7fffffffu

#define IMG_SD_MIN_COUNT 240u    /* -M img_gen replaced txt2img */
#define IMG_SD_SCHEDULER_AT 263u /* --schedule became --scheduler */
#define IMG_SD_BACKEND_AT 611u   /* --backend te=cpu / vae=cpu */

typedef struct img_request {
    char *model;           /* full checkpoint (-m), or NULL */
    char *diffusion_model; /* standalone diffusion model, or NULL */
    char *clip_l;          /* optional components */
    char *clip_g;
    char *t5xxl;
    char *vae;
    char *prompt;
    char *negative_prompt; /* NULL or "" = none */
    uint32_t width;        /* 0 = IMG_SIDE_DEFAULT */
    uint32_t height;
    uint32_t steps; /* 0 = IMG_STEPS_DEFAULT */
    int has_cfg;
    double cfg_scale;
    int has_guidance; /* --guidance: distilled guidance (Flux dev) */
    double guidance;
    int has_seed; /* 0: img_request_resolve_seed() draws one */
    int64_t seed;
    char *sampler;        /* NULL = the model's default */
    char *scheduler;      /* NULL = the model's default */
    uint32_t batch_count; /* 0 = 1 */
    int32_t threads;      /* 0 = not passed; -1 = physical cores */
    /* The model's settings (src/image/resolve.h): the registry's override
     * (JSON text, see diffusion/settings.h) or NULL, and the policy for
     * fields outside the model's range (enum dm_policy; 0 = the model's). */
    char *settings_json;
    int policy;
    int settings_applied; /* img_resolve ran on this request: do not run it again */
    /* Placement, chosen by the planner. */
    int te_on_cpu;
    int vae_on_cpu;
    int vae_tiling;
    int offload_to_cpu;
    int diffusion_fa;
    int verbose; /* pass -v: the compute-buffer lines the planner learns from */
} img_request;

/* A NULL-terminated argv the caller frees with img_argv_free(). */
typedef struct img_argv {
    char **argv;
    size_t argc;
} img_argv;

/* Checks every field against the bounds above. GENAI_EBAD_ARG with the field
 * name and the allowed range in err. */
int img_request_validate(const img_request *r, genai_error *err);

/* Draws a seed from getrandom(2) when none was given (0..2^31-1, so it reads
 * the same in every client) and sets has_seed, so the seed can be reported. */
int img_request_resolve_seed(img_request *r, genai_error *err);

/* Deep copy of src into *dst (strings duplicated). -ENOMEM leaves *dst
 * untouched. */
int img_request_copy(img_request *dst, const img_request *src);

/* Frees the strings of a request made by img_request_copy() and zeroes it.
 * Accepts NULL. */
void img_request_free(img_request *r);

/* Effective width/height/steps/batch after defaults. */
uint32_t img_request_width(const img_request *r);
uint32_t img_request_height(const img_request *r);
uint32_t img_request_steps(const img_request *r);
uint32_t img_request_batch(const img_request *r);

/* True when name is one of master-827's sampling methods / schedulers. */
int img_sampler_known(const char *name);
int img_scheduler_known(const char *name);

/*
 * Builds the argv that runs r with the sd-cli at bin, of version v (NULL =
 * unknown = current), writing its images into out_dir (a private directory
 * the caller made, see img_workdir_create). The request must be valid and its
 * seed resolved (GENAI_EBAD_ARG otherwise). GENAI_EUNSUPPORTED for a build
 * older than IMG_SD_MIN_COUNT.
 */
int img_argv_build(const img_request *r, const img_sd_version *v, const char *bin,
                   const char *out_dir, img_argv *out, genai_error *err);

void img_argv_free(img_argv *a);

/* The file sd-cli writes for image index (0-based) of a batch of batch_count
 * into out_dir: "out.png", or "out_<index>.png" when batch_count > 1. */
int img_output_path(const char *out_dir, uint32_t batch_count, uint32_t index, char *buf,
                    size_t bufsz);

/* Creates a private (0700) directory "sd-XXXXXX" under parent and writes its
 * path to out. */
int img_workdir_create(const char *parent, char *out, size_t outsz, genai_error *err);

/* Removes the files directly inside dir and dir itself (sd-cli writes no
 * subdirectories there). Missing dir is not an error. */
int img_workdir_remove(const char *dir, genai_error *err);

#endif
