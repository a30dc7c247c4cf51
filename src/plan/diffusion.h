/*
 * diffusion.h - memory demand of a stable-diffusion.cpp image job
 * (contracts/memory.md §9, §13.4).
 *
 * demand = params of each module in the place it lives
 *        + the largest compute buffer over the phases (text encoder, then the
 *          diffusion model for each step, then the VAE), per place: the phases
 *          run one after another, so their buffers do not add up (OBS)
 *        + the process runtime (~44 MiB, OBS) and the GPU driver context.
 *
 * Compute-buffer model per phase (coefficients and their tags in
 * docs/planner.md):
 *   - diffusion model without flash attention: the attention scores of the
 *     highest-resolution attention, (n_img + n_txt)^2 x heads x 4 B with
 *     n_img = (W/8/d)(H/8/d) image tokens (d: attn_token_divisor) and n_txt
 *     text tokens joined to them (DiTs), plus a linear term per latent pixel;
 *     with flash attention only a linear term;
 *   - VAE decode: bytes per output pixel, capped at one tile with tiling;
 *   - text encoder: a constant per prompt.
 * Batch count does not change the peak (images are made one after another).
 */
#ifndef GENAI_PLAN_DIFFUSION_H
#define GENAI_PLAN_DIFFUSION_H

#include "core/error.h"
#include "plan/demand.h"

#include <stddef.h>
#include <stdint.h>

/* Defaults for the coefficients a caller leaves at 0 (docs/planner.md). */
#define PLAN_SD_DEFAULT_HEADS 8                    /* SD1 attention heads (INF) */
#define PLAN_SD_DEFAULT_UNET_LINEAR (12 * 1024)    /* B per latent pixel, no FA (EXT) */
#define PLAN_SD_DEFAULT_UNET_FA_LINEAR (32 * 1024) /* B per latent pixel, FA (EXT) */
#define PLAN_SD_DEFAULT_VAE_PER_PIXEL 6656         /* B per output pixel (INF) */
#define PLAN_SD_DEFAULT_TE_COMPUTE (2 * PLAN_MIB)  /* text encoder buffer (OBS 1.42) */
#define PLAN_SD_VAE_TILE_PIXELS (256 * 256)        /* 32x32 latent tiles (OBS) */

/* The text encoders a model may have, for per-encoder sizes. */
enum plan_sd_te {
    PLAN_SD_TE_CLIP_L,     /* CLIP ViT-L/14 */
    PLAN_SD_TE_CLIP_G,     /* OpenCLIP ViT-bigG */
    PLAN_SD_TE_OPENCLIP_H, /* OpenCLIP ViT-H (SD 2.x) */
    PLAN_SD_TE_T5XXL,      /* T5-XXL encoder (SD3, Flux) */
    PLAN_SD_TE__COUNT
};

/* A model's components and its learned or default coefficients. */
typedef struct plan_sd_model {
    uint64_t diffusion_bytes;             /* UNet / DiT params */
    uint64_t text_encoder_bytes;          /* all text encoders together; 0 = the sum of te_bytes */
    uint64_t te_bytes[PLAN_SD_TE__COUNT]; /* per encoder; all 0 when unknown */
    uint64_t vae_bytes;                   /* VAE params used for txt2img (the decoder) */
    uint32_t attn_heads;                  /* 0 = PLAN_SD_DEFAULT_HEADS */
    /* The largest attention runs over (W/8/d) x (H/8/d) image tokens, d this
     * divisor (SDXL's first attention level and 2x2-patch DiTs: 2); 0 = 1. */
    uint32_t attn_token_divisor;
    /* Text tokens joined to the image tokens in that attention (DiTs: Flux
     * dev 512, schnell 256, SD3 154); 0 for cross-attention UNets. */
    uint32_t attn_text_tokens;
    uint64_t unet_linear;    /* 0 = default; B per latent pixel without FA */
    uint64_t unet_fa_linear; /* 0 = default; B per latent pixel with FA */
    uint64_t vae_per_pixel;  /* 0 = default; B per output pixel */
    uint64_t te_compute;     /* 0 = default; text encoder compute bytes */
} plan_sd_model;

typedef struct plan_sd_request {
    uint32_t width, height; /* pixels */
    uint32_t batch;         /* images (does not change the peak) */
} plan_sd_request;

/* Where the job's parts run; each flag is one sd.cpp option. */
typedef struct plan_sd_placement {
    int diffusion_fa;   /* --diffusion-fa */
    int vae_tiling;     /* --vae-tiling */
    int te_on_cpu;      /* --backend te=cpu (was --clip-on-cpu) */
    int vae_on_cpu;     /* --backend vae=cpu (was --vae-on-cpu) */
    int offload_to_cpu; /* --offload-to-cpu: params in RAM, uploaded per module */
    int gpu;            /* snapshot index of the GPU used, -1 for CPU only */
} plan_sd_placement;

/* The attention-score bytes of the largest attention at this size:
 * (n_img + n_txt)^2 x heads x 4 B, n_img = (W/8/d)(H/8/d) (saturating). */
uint64_t plan_sd_attn_bytes(const plan_sd_model *m, const plan_sd_request *req);
/* Text-encoder params: text_encoder_bytes, or the sum of te_bytes when 0. */
uint64_t plan_sd_te_bytes(const plan_sd_model *m);

/* Compute bytes of each phase at this size and placement. */
uint64_t plan_sd_unet_compute(const plan_sd_model *m, const plan_sd_request *req, int fa);
uint64_t plan_sd_vae_compute(const plan_sd_model *m, const plan_sd_request *req, int tiling);
uint64_t plan_sd_te_compute(const plan_sd_model *m);

/*
 * Fills *out with the demand of req under placement pl. GENAI_EBAD_ARG for a
 * zero size or a GPU index past PLAN_MAX_GPUS.
 */
int plan_sd_estimate(const plan_sd_model *m, const plan_sd_request *req,
                     const plan_sd_placement *pl, plan_demand *out, genai_error *err);

/* Writes "gpu,fa,vae-tiling,te=cpu,..." or "cpu-only,..." describing pl into buf. */
void plan_sd_placement_str(const plan_sd_placement *pl, char *buf, size_t len);

#endif
