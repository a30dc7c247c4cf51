/*
 * test_diffusion.c - stable-diffusion.cpp demand against memory.md §9.2
 * (reference model, CPU) and the placement rules.
 */
#include "cmocka_all.h"

#include "plan/diffusion.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

static void assert_within(double got, double want, double tol)
{
    double r = got / want - 1.0;
    if (fabs(r) > tol)
        fail_msg("got %.3f, want %.3f (off by %.1f%%)", got, want, r * 100.0);
}

/* The reference model's own coefficients (32-channel UNet, SD1 attention
 * layout, 32-channel VAE decoder): OBS values of memory.md §9.2. */
static const plan_sd_model ref = {
    .diffusion_bytes = (uint64_t)(19.85 * MIB),
    .text_encoder_bytes = (uint64_t)(235.06 * MIB),
    .vae_bytes = (uint64_t)(5.94 * MIB),
    .attn_heads = 8,
    .unet_linear = 1300,
    .unet_fa_linear = 3280,
    .vae_per_pixel = 1664,
    .te_compute = (uint64_t)(1.42 * MIB),
};

static void test_compute_terms(void **state)
{
    (void)state;
    plan_sd_request r512 = {512, 512, 1}, r2048 = {2048, 2048, 1}, r64 = {64, 64, 1};
    assert_within(plan_sd_unet_compute(&ref, &r512, 0) / MIB, 517.30, 0.02);
    assert_within(plan_sd_unet_compute(&ref, &r2048, 0) / MIB, 131142.46, 0.01);
    assert_within(plan_sd_unet_compute(&ref, &r512, 1) / MIB, 12.82, 0.05);
    /* VAE: 1664 B per pixel, capped at a 256x256 tile. */
    assert_within(plan_sd_vae_compute(&ref, &r512, 0) / MIB, 416.06, 0.001);
    assert_within(plan_sd_vae_compute(&ref, &r512, 1) / MIB, 104.02, 0.001);
    assert_within(plan_sd_vae_compute(&ref, &r64, 0) / MIB, 6.50, 0.001);
    assert_within(plan_sd_vae_compute(&ref, &r64, 1) / MIB, 6.50, 0.001);
    /* Quadratic without FA: 4x the pixels, ~16x the scores. */
    plan_sd_request r1024 = {1024, 1024, 1};
    double q = (double)plan_sd_unet_compute(&ref, &r1024, 0) /
               (double)plan_sd_unet_compute(&ref, &r512, 0);
    assert_true(q > 15.0 && q < 16.1);
    /* Defaults describe a real SD1 model: 8 GiB of scores at 1024^2. */
    plan_sd_model sd1 = {0};
    assert_within(plan_sd_unet_compute(&sd1, &r1024, 0) / MIB, 8360.93, 0.03);
    /* Absurd sizes saturate instead of wrapping. */
    plan_sd_request huge = {1u << 20, 1u << 20, 1};
    assert_true(plan_sd_unet_compute(&sd1, &huge, 0) >= UINT64_MAX / 4);
}

/* Peak RSS on CPU = params + largest phase buffer + ~44 MiB (OBS). */
static void test_cpu_peak(void **state)
{
    (void)state;
    plan_sd_placement cpu = {.gpu = -1};
    plan_demand d;
    plan_sd_request r512 = {512, 512, 1};
    assert_int_equal(plan_sd_estimate(&ref, &r512, &cpu, &d, NULL), 0);
    assert_int_equal(d.n_gpus, 0);
    assert_within((double)d.host_anon / 1e6, 840, 0.05);
    cpu.diffusion_fa = 1;
    assert_int_equal(plan_sd_estimate(&ref, &r512, &cpu, &d, NULL), 0);
    assert_within((double)d.host_anon / 1e6, 738, 0.05);
    plan_sd_request r128 = {128, 128, 1}, r128b2 = {128, 128, 2};
    cpu.diffusion_fa = 0;
    assert_int_equal(plan_sd_estimate(&ref, &r128, &cpu, &d, NULL), 0);
    assert_within((double)d.host_anon / 1e6, 339, 0.05);
    uint64_t one = d.host_anon;
    assert_int_equal(plan_sd_estimate(&ref, &r128b2, &cpu, &d, NULL), 0);
    assert_int_equal(d.host_anon, one); /* batch does not raise the peak */
    assert_int_equal(d.host_file, 0);
    assert_int_equal(d.host_growth, d.host_parts.compute);
}

static void test_gpu_placements(void **state)
{
    (void)state;
    plan_sd_model m = {.diffusion_bytes = 1000 * (uint64_t)MIB,
                       .text_encoder_bytes = 200 * (uint64_t)MIB,
                       .vae_bytes = 100 * (uint64_t)MIB};
    plan_sd_request req = {512, 512, 1};
    plan_demand d;
    plan_sd_placement pl = {.gpu = 1};
    assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, NULL), 0);
    assert_int_equal(d.n_gpus, 2);
    assert_int_equal(d.gpu[0], 0);
    assert_int_equal(d.gpu_parts[1].weights, 1300 * (uint64_t)MIB);
    uint64_t unet = plan_sd_unet_compute(&m, &req, 0);
    uint64_t vae = plan_sd_vae_compute(&m, &req, 0);
    assert_int_equal(d.gpu_parts[1].compute, unet > vae ? unet : vae);
    assert_int_equal(d.gpu_parts[1].driver, PLAN_DRIVER_GPU_BYTES);
    assert_int_equal(d.host_parts.weights, 0);

    pl.te_on_cpu = 1;
    assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, NULL), 0);
    assert_int_equal(d.gpu_parts[1].weights, 1100 * (uint64_t)MIB);
    assert_int_equal(d.host_parts.weights, 200 * (uint64_t)MIB);
    assert_int_equal(d.host_parts.compute, plan_sd_te_compute(&m));

    pl.vae_on_cpu = 1;
    assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, NULL), 0);
    assert_int_equal(d.host_parts.compute, vae);
    assert_int_equal(d.gpu_parts[1].compute, unet);

    /* Offload: params in RAM; the GPU holds the active module + buffer. */
    pl = (plan_sd_placement){.gpu = 0, .offload_to_cpu = 1, .diffusion_fa = 1};
    assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, NULL), 0);
    assert_int_equal(d.gpu_parts[0].weights, 0);
    assert_int_equal(d.host_parts.weights, 1300 * (uint64_t)MIB);
    uint64_t unet_fa = plan_sd_unet_compute(&m, &req, 1);
    uint64_t peak = 1000 * (uint64_t)MIB + unet_fa;
    if (100 * (uint64_t)MIB + vae > peak)
        peak = 100 * (uint64_t)MIB + vae;
    assert_int_equal(d.gpu_parts[0].compute, peak);

    genai_error err;
    plan_sd_request zero = {0, 512, 1};
    assert_int_equal(plan_sd_estimate(&m, &zero, &pl, &d, &err), GENAI_EBAD_ARG);
    pl.gpu = PLAN_MAX_GPUS;
    assert_int_equal(plan_sd_estimate(&m, &req, &pl, &d, &err), GENAI_EBAD_ARG);
}

/* The family structure fields: attention over fewer tokens (SDXL's first
 * attention level, DiT patches), text tokens joined to the image tokens
 * (Flux), and per-encoder sizes. Each against the exact attention term. */
static void test_structure_fields(void **state)
{
    (void)state;
    plan_sd_request r1024 = {1024, 1024, 1}, r512 = {512, 512, 1};
    /* Defaults: every latent pixel is a token, 8 heads (SD1). */
    plan_sd_model sd1 = {0};
    assert_int_equal(plan_sd_attn_bytes(&sd1, &r512), 4096ull * 4096 * 8 * 4);
    /* SDXL: 10 heads over (1024/8/2)^2 = 4096 tokens. */
    plan_sd_model sdxl = {.attn_heads = 10, .attn_token_divisor = 2};
    assert_int_equal(plan_sd_attn_bytes(&sdxl, &r1024), 4096ull * 4096 * 10 * 4);
    assert_int_equal(plan_sd_unet_compute(&sdxl, &r1024, 0),
                     4096ull * 4096 * 10 * 4 + 16384ull * PLAN_SD_DEFAULT_UNET_LINEAR);
    /* Flux dev: 24 heads over 4096 image tokens plus 512 text tokens. */
    plan_sd_model flux = {.attn_heads = 24, .attn_token_divisor = 2, .attn_text_tokens = 512};
    uint64_t exact = 4608ull * 4608 * 24 * 4;
    assert_int_equal(plan_sd_attn_bytes(&flux, &r1024), exact);
    /* The text tokens are what the old "heads / 16" form missed. */
    plan_sd_model no_text = flux;
    no_text.attn_text_tokens = 0;
    assert_true(plan_sd_attn_bytes(&flux, &r1024) > plan_sd_attn_bytes(&no_text, &r1024));
    /* Flash attention drops the quadratic term whatever the structure. */
    assert_int_equal(plan_sd_unet_compute(&flux, &r1024, 1),
                     16384ull * PLAN_SD_DEFAULT_UNET_FA_LINEAR);
    /* A non-square size: (768/16) x (1344/16) image tokens. */
    plan_sd_request wide = {1344, 768, 1};
    uint64_t t = 84ull * 48 + 512;
    assert_int_equal(plan_sd_attn_bytes(&flux, &wide), t * t * 24 * 4);

    /* Per-encoder sizes: the text-encoder phase is their sum, placed with
     * te=cpu as one module (sd.cpp has no flag for T5 alone). */
    plan_sd_model m = {.diffusion_bytes = 100 * PLAN_MIB, .vae_bytes = 10 * PLAN_MIB};
    m.te_bytes[PLAN_SD_TE_CLIP_L] = 200 * PLAN_MIB;
    m.te_bytes[PLAN_SD_TE_T5XXL] = 900 * PLAN_MIB;
    assert_int_equal(plan_sd_te_bytes(&m), 1100 * PLAN_MIB);
    plan_sd_placement gpu = {.gpu = 0}, te_cpu = {.gpu = 0, .te_on_cpu = 1};
    plan_demand d1, d2;
    genai_error e;
    assert_int_equal(plan_sd_estimate(&m, &r512, &gpu, &d1, &e), 0);
    assert_int_equal(plan_sd_estimate(&m, &r512, &te_cpu, &d2, &e), 0);
    assert_int_equal(d1.gpu_parts[0].weights, 1210 * PLAN_MIB);
    assert_int_equal(d2.gpu_parts[0].weights, 110 * PLAN_MIB);
    assert_int_equal(d2.host_parts.weights, 1100 * PLAN_MIB);
    /* An explicit total wins over the parts (a learned or measured value). */
    m.text_encoder_bytes = 50 * PLAN_MIB;
    assert_int_equal(plan_sd_te_bytes(&m), 50 * PLAN_MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compute_terms),
        cmocka_unit_test(test_cpu_peak),
        cmocka_unit_test(test_gpu_placements),
        cmocka_unit_test(test_structure_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
