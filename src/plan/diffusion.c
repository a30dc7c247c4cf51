/*
 * diffusion.c - stable-diffusion.cpp demand (see diffusion.h).
 */
#include "plan/diffusion.h"

#include <stdio.h>
#include <string.h>

static uint64_t or_default(uint64_t v, uint64_t def)
{
    return v != 0 ? v : def;
}

static uint64_t latent_pixels(const plan_sd_request *req)
{
    return (uint64_t)(req->width / 8) * (req->height / 8);
}

uint64_t plan_sd_attn_bytes(const plan_sd_model *m, const plan_sd_request *req)
{
    uint64_t d = m->attn_token_divisor != 0 ? m->attn_token_divisor : 1;
    /* Tokens per side round up: sd.cpp pads a latent side that the patch
     * size does not divide (INF; every size genai accepts is a multiple of
     * 64, so W/8 is a multiple of 8 and this never rounds for d <= 8). */
    uint64_t tw = ((uint64_t)req->width / 8 + d - 1) / d;
    uint64_t th = ((uint64_t)req->height / 8 + d - 1) / d;
    uint64_t tokens = tw * th + m->attn_text_tokens;
    uint64_t heads = m->attn_heads != 0 ? m->attn_heads : PLAN_SD_DEFAULT_HEADS;
    /* tokens^2 overflows 64 bits only past ~2^28 tokens (16k x 16k images);
     * saturate rather than wrap. */
    uint64_t scores;
    if (tokens > UINT32_MAX || __builtin_mul_overflow(tokens * tokens, heads * 4, &scores))
        return UINT64_MAX / 2;
    return scores;
}

uint64_t plan_sd_te_bytes(const plan_sd_model *m)
{
    if (m->text_encoder_bytes != 0)
        return m->text_encoder_bytes;
    uint64_t sum = 0;
    for (int i = 0; i < PLAN_SD_TE__COUNT; i++)
        sum = sum + m->te_bytes[i] < sum ? UINT64_MAX : sum + m->te_bytes[i];
    return sum;
}

uint64_t plan_sd_unet_compute(const plan_sd_model *m, const plan_sd_request *req, int fa)
{
    uint64_t lat = latent_pixels(req);
    if (fa)
        return lat * or_default(m->unet_fa_linear, PLAN_SD_DEFAULT_UNET_FA_LINEAR);
    uint64_t scores = plan_sd_attn_bytes(m, req);
    if (scores >= UINT64_MAX / 2)
        return UINT64_MAX / 2;
    return scores + lat * or_default(m->unet_linear, PLAN_SD_DEFAULT_UNET_LINEAR);
}

uint64_t plan_sd_vae_compute(const plan_sd_model *m, const plan_sd_request *req, int tiling)
{
    uint64_t px = (uint64_t)req->width * req->height;
    if (tiling && px > PLAN_SD_VAE_TILE_PIXELS)
        px = PLAN_SD_VAE_TILE_PIXELS;
    return px * or_default(m->vae_per_pixel, PLAN_SD_DEFAULT_VAE_PER_PIXEL);
}

uint64_t plan_sd_te_compute(const plan_sd_model *m)
{
    return or_default(m->te_compute, PLAN_SD_DEFAULT_TE_COMPUTE);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

int plan_sd_estimate(const plan_sd_model *m, const plan_sd_request *req,
                     const plan_sd_placement *pl, plan_demand *out, genai_error *err)
{
    if (req->width == 0 || req->height == 0)
        return err_set(err, GENAI_EBAD_ARG, "image size %ux%u", req->width, req->height);
    if (pl->gpu >= PLAN_MAX_GPUS)
        return err_set(err, GENAI_EBAD_ARG, "GPU index %d out of range", pl->gpu);

    plan_demand d;
    memset(&d, 0, sizeof(d));
    d.tier = PLAN_TIER_ESTIMATE;

    uint64_t te_c = plan_sd_te_compute(m);
    uint64_t unet_c = plan_sd_unet_compute(m, req, pl->diffusion_fa);
    uint64_t vae_c = plan_sd_vae_compute(m, req, pl->vae_tiling);

    int gpu = pl->gpu;
    int te_gpu = gpu >= 0 && !pl->te_on_cpu;
    int vae_gpu = gpu >= 0 && !pl->vae_on_cpu;
    int unet_gpu = gpu >= 0;

    plan_breakdown *host = &d.host_parts;
    uint64_t host_peak = 0;
    uint64_t gpu_peak = 0; /* compute (plus active params with offload) on the GPU */
    uint64_t gpu_params = 0;
    /* Phase by phase: (params, compute, on GPU?). */
    const struct {
        uint64_t params, compute;
        int on_gpu;
    } phases[3] = {
        {plan_sd_te_bytes(m), te_c, te_gpu},
        {m->diffusion_bytes, unet_c, unet_gpu},
        {m->vae_bytes, vae_c, vae_gpu},
    };
    for (int i = 0; i < 3; i++) {
        if (!phases[i].on_gpu) {
            host->weights += phases[i].params;
            host_peak = max_u64(host_peak, phases[i].compute);
        } else if (pl->offload_to_cpu) {
            /* Params stay in RAM and are uploaded when the module runs: the
             * GPU holds the active module and its buffer (INF, DOC). */
            host->weights += phases[i].params;
            gpu_peak = max_u64(gpu_peak, phases[i].params + phases[i].compute);
        } else {
            gpu_params += phases[i].params;
            gpu_peak = max_u64(gpu_peak, phases[i].compute);
        }
    }
    host->compute = host_peak;
    host->runtime = PLAN_SD_RUNTIME_ANON;
    if (gpu >= 0) {
        plan_breakdown *g = &d.gpu_parts[gpu];
        d.n_gpus = (uint32_t)gpu + 1;
        g->weights = gpu_params;
        /* With --offload-to-cpu the uploaded module counts as compute: it
         * comes and goes with its phase. */
        g->compute = gpu_peak;
        g->driver = PLAN_DRIVER_GPU_BYTES;
        host->driver = PLAN_DRIVER_HOST_BYTES;
        d.gpu[gpu] = plan_breakdown_total(g);
    }
    /* sd.cpp reads params into its own buffers: anonymous memory. */
    d.host_anon = plan_breakdown_total(host);
    d.host_file = 0;
    d.host_growth = host->compute;

    char where[96];
    plan_sd_placement_str(pl, where, sizeof(where));
    plan_demand_set_note(&d, "diffusion estimate: %ux%u, %s", req->width, req->height, where);
    *out = d;
    return 0;
}

void plan_sd_placement_str(const plan_sd_placement *pl, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s%s", pl->gpu < 0 ? "cpu-only" : "gpu",
             pl->diffusion_fa ? ",fa" : "", pl->vae_tiling ? ",vae-tiling" : "",
             pl->te_on_cpu ? ",te=cpu" : "", pl->vae_on_cpu ? ",vae=cpu" : "",
             pl->offload_to_cpu ? ",offload-to-cpu" : "");
}
