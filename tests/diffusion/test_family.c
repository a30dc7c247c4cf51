/*
 * test_family.c - family detection over fixture files of each family's
 * layout (safetensors and GGUF, checkpoints and separate components), the
 * distilled variants from names and tensors, unknown sets, the component
 * check, stable-diffusion.cpp's version strings and the planner's inputs.
 */
#include "cmocka_all.h"
#include "dm_fixtures.h"

#include "core/alloc.h"
#include "diffusion/family.h"
#include "plan/diffusion.h"

#include <jansson.h>
#include <string.h>

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir("dm");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmdir(dir);
    mem_free(dir);
    return 0;
}

/* Detects one checkpoint file written as safetensors under name. */
static dm_detection detect_st(const char *name, const dmt_row *rows, size_t n,
                              const char *const *meta, size_t n_meta)
{
    char *path = dmt_write_st(dir, name, rows, n, meta, n_meta);
    dm_component c = {DM_ROLE_MODEL, path};
    dm_detection d;
    genai_error e;
    int rc = dm_detect_paths(&c, 1, &d, &e);
    if (rc != 0)
        fail_msg("%s: %s", name, e.detail);
    mem_free(path);
    return d;
}

static void test_sd1(void **state)
{
    (void)state;
    dm_detection d = detect_st("v1-5-pruned-emaonly.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SD1);
    assert_int_equal(d.variant, DM_VARIANT_BASE);
    assert_int_equal(d.confidence, DM_CONF_HIGH);
    assert_non_null(strstr(d.evidence, "attn2.to_k.weight"));
    assert_non_null(strstr(d.evidence, "768"));
    assert_string_equal(d.notes, "");
    uint32_t want = 1u << DM_COMP_DIFFUSION | 1u << DM_COMP_CLIP_L | 1u << DM_COMP_VAE;
    assert_int_equal(d.present, want);
    assert_int_equal(d.in_model, want);
    assert_int_equal(d.st.model_channels, 320);
    assert_int_equal(d.st.in_channels, 4);
    assert_int_equal(d.st.context_dim, 768);
    assert_int_equal(d.st.attn_heads, 8);
    assert_int_equal(d.st.vae_channels, 128);
    assert_int_equal(d.st.other_bytes, 4); /* model_ema.decay, F32 scalar */
    /* Text encoder bytes are the two CLIP tensors, F16. */
    assert_int_equal(d.st.bytes[DM_COMP_CLIP_L], (49408ull * 768 + 768) * 2);
    /* Decoder: conv_in, conv_out, up block, post_quant_conv. */
    assert_int_equal(d.st.vae_decoder_bytes,
                     (512ull * 4 * 9 + 3 * 128 * 9 + 128 * 256 * 9 + 16) * 2);
    genai_error e;
    assert_int_equal(dm_check_components(&d, &e), 0);
}

static void test_sd2_and_name_hints(void **state)
{
    (void)state;
    dm_detection d = detect_st("v2-1_768-ema-pruned.safetensors", dmt_sd2, dmt_sd2_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SD2);
    assert_int_equal(d.confidence, DM_CONF_HIGH);
    assert_int_equal(d.st.attn_heads, 5);
    assert_true(d.present & (1u << DM_COMP_OPENCLIP_H));
    genai_error e;
    assert_int_equal(dm_check_components(&d, &e), 0);

    /* SD-Turbo is SD 2.1 with another name. */
    d = detect_st("sd_turbo.safetensors", dmt_sd2, dmt_sd2_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SD2);
    assert_int_equal(d.variant, DM_VARIANT_TURBO);
    assert_int_equal(d.variant_confidence, DM_CONF_LOW);
    assert_non_null(strstr(d.variant_evidence, "file name"));

    /* A name that disagrees with the tensors is noted, not followed. */
    d = detect_st("sdxl_hyperrealism.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SD1);
    assert_int_equal(d.variant, DM_VARIANT_BASE); /* "hyperrealism" is not Hyper */
    assert_non_null(strstr(d.notes, "suggests SDXL, but the tensors say SD 1.x"));

    /* A variant that does not exist for the family is ignored with a note. */
    d = detect_st("sd15_lightning.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    assert_int_equal(d.variant, DM_VARIANT_BASE);
    assert_non_null(strstr(d.notes, "lightning, which does not exist for SD 1.x"));

    d = detect_st("lcm_dreamshaper_v7.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    assert_int_equal(d.variant, DM_VARIANT_LCM);
}

static void test_sdxl_variants(void **state)
{
    (void)state;
    dm_detection d = detect_st("sd_xl_base_1.0.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SDXL);
    assert_int_equal(d.confidence, DM_CONF_HIGH);
    assert_non_null(strstr(d.evidence, "2048-wide"));
    assert_int_equal(d.st.attn_heads, 10);
    assert_int_equal(d.st.attn_downsample, 2);
    assert_true(d.present & (1u << DM_COMP_CLIP_G));
    genai_error e;
    assert_int_equal(dm_check_components(&d, &e), 0);

    d = detect_st("sdxl_lightning_4step.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    assert_int_equal(d.variant, DM_VARIANT_LIGHTNING);
    assert_int_equal(d.steps_hint, 4);

    d = detect_st("Hyper-SDXL-8steps.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    assert_int_equal(d.variant, DM_VARIANT_HYPER);
    assert_int_equal(d.steps_hint, 8);

    d = detect_st("DreamShaperXLTurbo.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    assert_int_equal(d.variant, DM_VARIANT_TURBO);

    /* The metadata title outranks the file name. */
    const char *meta[] = {"modelspec.title", "SDXL Turbo", "modelspec.architecture",
                          "stable-diffusion-xl-v1-base"};
    d = detect_st("model.safetensors", dmt_sdxl, dmt_sdxl_n, meta, 2);
    assert_int_equal(d.variant, DM_VARIANT_TURBO);
    assert_int_equal(d.variant_confidence, DM_CONF_MEDIUM);
    assert_non_null(strstr(d.variant_evidence, "metadata title"));
    assert_string_equal(d.notes, "");

    /* SDXL without its VAE (some fine-tunes ship the UNet and encoders). */
    d = detect_st("no_vae_xl.safetensors", dmt_sdxl, dmt_sdxl_n - 6, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_SDXL);
    assert_int_equal(dm_check_components(&d, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "SDXL needs a component: missing vae"));
    assert_non_null(strstr(e.detail, "--vae"));
}

static void test_sd3_gguf_components(void **state)
{
    (void)state;
    char *model = dmt_write_gguf(dir, "sd3_medium-Q8_0.gguf", dmt_sd3_bare, dmt_sd3_bare_n, "sd3");
    char *cl = dmt_write_st(dir, "clip_l.safetensors", dmt_clip_l, dmt_clip_l_n, NULL, 0);
    char *cg = dmt_write_st(dir, "clip_g.safetensors", dmt_clip_g, dmt_clip_g_n, NULL, 0);
    char *t5 = dmt_write_gguf(dir, "t5xxl.gguf", dmt_t5xxl, dmt_t5xxl_n, NULL);
    char *vae = dmt_write_st(dir, "sd3_vae.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    dm_component c[] = {
        {DM_ROLE_MODEL, model}, {DM_ROLE_CLIP_L, cl}, {DM_ROLE_CLIP_G, cg},
        {DM_ROLE_T5XXL, t5},    {DM_ROLE_VAE, vae},
    };
    dm_detection d;
    genai_error e;
    assert_int_equal(dm_detect_paths(c, 5, &d, &e), 0);
    assert_int_equal(d.family, DM_FAMILY_SD3);
    assert_int_equal(d.confidence, DM_CONF_HIGH);
    assert_non_null(strstr(d.evidence, "model.diffusion_model.joint_blocks."));
    assert_int_equal(d.st.depth, 24);
    assert_int_equal(d.st.model_channels, 1536);
    assert_int_equal(d.st.attn_heads, 24);
    assert_int_equal(d.in_model, 1u << DM_COMP_DIFFUSION);
    assert_int_equal(d.st.bytes[DM_COMP_T5XXL], (32128ull * 4096 + 4096 * 4096 + 4096) * 2);
    assert_int_equal(dm_check_components(&d, &e), 0);

    /* Without the T5 file: the error names it, its role and its flag. */
    assert_int_equal(dm_detect_paths(c, 3, &d, &e), 0);
    assert_int_equal(dm_check_components(&d, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "SD3 needs more components"));
    assert_non_null(
        strstr(e.detail, "t5xxl (the T5-XXL text encoder: role t5xxl, sd-cli --t5xxl)"));
    assert_non_null(strstr(e.detail, "vae ("));
    assert_null(strstr(e.detail, "clip_g"));

    /* Two files with one role. */
    dm_component twice[] = {{DM_ROLE_MODEL, model}, {DM_ROLE_VAE, vae}, {DM_ROLE_VAE, vae}};
    assert_int_equal(dm_detect_paths(twice, 3, &d, &e), GENAI_EBAD_ARG);
    /* No model file. */
    assert_int_equal(dm_detect_paths(c + 4, 1, &d, &e), GENAI_EBAD_ARG);
    mem_free(model);
    mem_free(cl);
    mem_free(cg);
    mem_free(t5);
    mem_free(vae);
}

static void test_flux(void **state)
{
    (void)state;
    char *dev =
        dmt_write_st(dir, "flux1-dev.safetensors", dmt_flux_dev_bare, dmt_flux_dev_bare_n, NULL, 0);
    char *schnell = dmt_write_gguf(dir, "flux1-schnell-Q4_0.gguf", dmt_flux_schnell_bare,
                                   dmt_flux_schnell_bare_n, "flux");
    char *cl = dmt_write_st(dir, "clip_l.safetensors", dmt_clip_l, dmt_clip_l_n, NULL, 0);
    char *t5 = dmt_write_st(dir, "t5xxl_fp16.safetensors", dmt_t5xxl, dmt_t5xxl_n, NULL, 0);
    char *ae = dmt_write_st(dir, "ae.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    dm_component c[] = {
        {DM_ROLE_MODEL, dev}, {DM_ROLE_CLIP_L, cl}, {DM_ROLE_T5XXL, t5}, {DM_ROLE_VAE, ae}};
    dm_detection d;
    genai_error e;
    assert_int_equal(dm_detect_paths(c, 4, &d, &e), 0);
    assert_int_equal(d.family, DM_FAMILY_FLUX);
    assert_int_equal(d.variant, DM_VARIANT_BASE);
    assert_int_equal(d.variant_confidence, DM_CONF_HIGH);
    assert_non_null(strstr(d.variant_evidence, "guidance_in"));
    assert_int_equal(d.st.model_channels, 3072);
    assert_int_equal(d.st.attn_heads, 24);
    assert_int_equal(d.st.depth, 19 + 38);
    assert_int_equal(d.st.text_tokens, 512);
    assert_int_equal(d.st.vae_channels, 128);
    assert_int_equal(dm_check_components(&d, &e), 0);

    /* The planner's inputs: the parts, not one blob. */
    plan_sd_model m;
    assert_int_equal(dm_plan_model(&d, &m, &e), 0);
    assert_int_equal(m.diffusion_bytes, d.st.bytes[DM_COMP_DIFFUSION]);
    assert_int_equal(m.text_encoder_bytes, d.st.bytes[DM_COMP_CLIP_L] + d.st.bytes[DM_COMP_T5XXL]);
    assert_int_equal(m.vae_bytes, d.st.vae_decoder_bytes);
    assert_true(m.vae_bytes < d.st.bytes[DM_COMP_VAE]);
    assert_int_equal(m.vae_per_pixel, 52 * 128);
    /* 24 heads over 2x2 patches of the latent, joined by the 512 T5 tokens:
     * at 1024^2, (64 * 64 + 512)^2 scores per head, 4 B each. */
    assert_int_equal(m.attn_heads, 24);
    assert_int_equal(m.attn_token_divisor, 2);
    assert_int_equal(m.attn_text_tokens, 512);
    assert_int_equal(m.te_bytes[PLAN_SD_TE_CLIP_L], d.st.bytes[DM_COMP_CLIP_L]);
    assert_int_equal(m.te_bytes[PLAN_SD_TE_T5XXL], d.st.bytes[DM_COMP_T5XXL]);
    assert_true(m.te_bytes[PLAN_SD_TE_T5XXL] > m.te_bytes[PLAN_SD_TE_CLIP_L]);
    assert_int_equal(m.te_bytes[PLAN_SD_TE_CLIP_G], 0);
    plan_sd_request rq = {1024, 1024, 1};
    uint64_t exact = (4096ull + 512) * (4096 + 512) * 24 * 4;
    assert_int_equal(plan_sd_attn_bytes(&m, &rq), exact);
    assert_true(plan_sd_unet_compute(&m, &rq, 0) >= exact);

    /* Schnell: GGUF, no guidance_in, the name agrees. */
    c[0].path = schnell;
    assert_int_equal(dm_detect_paths(c, 4, &d, &e), 0);
    assert_int_equal(d.family, DM_FAMILY_FLUX);
    assert_int_equal(d.variant, DM_VARIANT_SCHNELL);
    assert_int_equal(d.variant_confidence, DM_CONF_HIGH);
    assert_int_equal(d.st.text_tokens, 256);

    /* Flux without its T5 and VAE. */
    assert_int_equal(dm_detect_paths(c, 2, &d, &e), 0);
    assert_int_equal(dm_check_components(&d, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "Flux needs more components: missing t5xxl"));
    assert_non_null(strstr(e.detail, "vae (the VAE: role vae, sd-cli --vae)"));

    /* A dev file named schnell: the tensors win, the conflict is noted. */
    char *mislabeled = dmt_write_st(dir, "flux1-schnell-fp8.safetensors", dmt_flux_dev_bare,
                                    dmt_flux_dev_bare_n, NULL, 0);
    c[0].path = mislabeled;
    assert_int_equal(dm_detect_paths(c, 1, &d, &e), 0);
    assert_int_equal(d.variant, DM_VARIANT_BASE);
    assert_non_null(strstr(d.notes, "name says schnell"));
    mem_free(mislabeled);
    mem_free(dev);
    mem_free(schnell);
    mem_free(cl);
    mem_free(t5);
    mem_free(ae);
}

static void test_sdxl_plan_heads(void **state)
{
    (void)state;
    dm_detection d = detect_st("sdxl.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    plan_sd_model m;
    genai_error e;
    assert_int_equal(dm_plan_model(&d, &m, &e), 0);
    assert_int_equal(m.attn_heads, 10);
    assert_int_equal(m.attn_token_divisor, 2);
    assert_int_equal(m.attn_text_tokens, 0); /* cross-attention: no joined text */
    assert_int_equal(m.text_encoder_bytes, d.st.bytes[DM_COMP_CLIP_L] + d.st.bytes[DM_COMP_CLIP_G]);
    assert_int_equal(m.te_bytes[PLAN_SD_TE_CLIP_G], d.st.bytes[DM_COMP_CLIP_G]);
    /* SDXL's first attention: 10 heads over (1024/16)^2 tokens, exactly. */
    plan_sd_request rq = {1024, 1024, 1};
    uint64_t exact = 4096ull * 4096 * 10 * 4;
    assert_int_equal(plan_sd_attn_bytes(&m, &rq), exact);
    uint64_t got = plan_sd_unet_compute(&m, &rq, 0);
    assert_true(got >= exact);
    assert_true(got < 2 * exact); /* not the SD1 figure of 8 heads at full size */
}

static void test_unknown(void **state)
{
    (void)state;
    /* A VAE alone given as the model: no diffusion tensors, no hint. */
    dm_detection d = detect_st("something.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_UNKNOWN);
    assert_int_equal(d.confidence, DM_CONF_NONE);
    assert_non_null(strstr(d.evidence, "no diffusion-model tensors"));
    genai_error e;
    assert_int_equal(dm_check_components(&d, &e), GENAI_EUNSUPPORTED);
    assert_non_null(strstr(e.detail, "unknown model family"));
    plan_sd_model m;
    assert_int_equal(dm_plan_model(&d, &m, &e), GENAI_EBAD_ARG);

    /* The SDXL refiner: a UNet with 1280-wide context. */
    d = detect_st("sd_xl_refiner_1.0.safetensors", dmt_sdxl_refiner, dmt_sdxl_refiner_n, NULL, 0);
    assert_int_equal(d.family, DM_FAMILY_UNKNOWN);
    assert_non_null(strstr(d.evidence, "1280-wide"));

    /* Chroma has Flux blocks; its name must not make it Flux. */
    d = detect_st("chroma-unlocked-v37-flux.safetensors", dmt_chroma_bare, dmt_chroma_bare_n, NULL,
                  0);
    assert_int_equal(d.family, DM_FAMILY_UNKNOWN);
    assert_non_null(strstr(d.evidence, "Chroma"));

    /* No diffusion tensors, but metadata names the architecture. */
    const char *meta[] = {"modelspec.architecture", "stable-diffusion-xl-v1-base"};
    d = detect_st("weights.safetensors", dmt_vae, dmt_vae_n, meta, 1);
    assert_int_equal(d.family, DM_FAMILY_SDXL);
    assert_int_equal(d.confidence, DM_CONF_MEDIUM);
    assert_non_null(strstr(d.evidence, "metadata architecture"));
}

static void test_sd1_split_refused(void **state)
{
    (void)state;
    char *unet =
        dmt_write_gguf(dir, "sd15-unet-Q8_0.gguf", dmt_sd1_unet_bare, dmt_sd1_unet_bare_n, "sd1");
    char *cl = dmt_write_st(dir, "clip_l.safetensors", dmt_clip_l, dmt_clip_l_n, NULL, 0);
    char *vae = dmt_write_st(dir, "vae.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    dm_component c[] = {{DM_ROLE_MODEL, unet}, {DM_ROLE_CLIP_L, cl}, {DM_ROLE_VAE, vae}};
    dm_detection d;
    genai_error e;
    assert_int_equal(dm_detect_paths(c, 3, &d, &e), 0);
    assert_int_equal(d.family, DM_FAMILY_SD1);
    assert_int_equal(d.present & (1u << DM_COMP_CLIP_L), 1u << DM_COMP_CLIP_L);
    assert_int_equal(dm_check_components(&d, &e), GENAI_EUNSUPPORTED);
    assert_non_null(strstr(e.detail, "full checkpoint"));

    /* A checkpoint plus a separate VAE is fine. */
    char *ckpt = dmt_write_st(dir, "sd15.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    c[0].path = ckpt;
    c[1] = c[2];
    assert_int_equal(dm_detect_paths(c, 2, &d, &e), 0);
    assert_int_equal(dm_check_components(&d, &e), 0);
    mem_free(ckpt);
    mem_free(unet);
    mem_free(cl);
    mem_free(vae);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *path = tu_path(dir, "garbage.safetensors");
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("\x10\0\0\0\0\0\0\0{not json}      ", f);
    fclose(f);
    dm_component c = {DM_ROLE_MODEL, path};
    dm_detection d;
    genai_error e;
    assert_int_equal(dm_detect_paths(&c, 1, &d, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "garbage.safetensors"));
    mem_free(path);
    path = tu_path(dir, "absent.gguf");
    c.path = path;
    assert_true(dm_detect_paths(&c, 1, &d, &e) < 0);
    mem_free(path);
}

static void test_sdcpp_versions(void **state)
{
    (void)state;
    enum dm_family f = DM_FAMILY__COUNT;
    int inpaint = -1;
    assert_int_equal(dm_family_from_sdcpp("Version: SD 1.x ", &f, &inpaint), 0);
    assert_int_equal(f, DM_FAMILY_SD1);
    assert_int_equal(inpaint, 0);
    assert_int_equal(dm_family_from_sdcpp("SDXL Inpaint", &f, &inpaint), 0);
    assert_int_equal(f, DM_FAMILY_SDXL);
    assert_int_equal(inpaint, 1);
    assert_int_equal(dm_family_from_sdcpp("SD3.x", &f, NULL), 0);
    assert_int_equal(f, DM_FAMILY_SD3);
    assert_int_equal(dm_family_from_sdcpp("  Flux\n", &f, NULL), 0);
    assert_int_equal(f, DM_FAMILY_FLUX);
    f = DM_FAMILY_SD2;
    assert_int_equal(dm_family_from_sdcpp("Wan 2.x", &f, NULL), GENAI_ENOT_FOUND);
    assert_int_equal(f, DM_FAMILY_SD2);
    assert_int_equal(dm_family_from_sdcpp("SD 1.xx", &f, NULL), GENAI_ENOT_FOUND);
}

static void test_names_and_json(void **state)
{
    (void)state;
    enum dm_family f;
    enum dm_variant v;
    enum dm_role r;
    genai_error e;
    for (unsigned i = 0; i < DM_FAMILY__COUNT; i++) {
        assert_int_equal(dm_family_parse(dm_family_name((enum dm_family)i), &f, &e), 0);
        assert_int_equal(f, i);
    }
    for (unsigned i = 0; i < DM_VARIANT__COUNT; i++) {
        assert_int_equal(dm_variant_parse(dm_variant_name((enum dm_variant)i), &v, &e), 0);
        assert_int_equal(v, i);
    }
    for (unsigned i = 0; i < DM_ROLE__COUNT; i++) {
        assert_int_equal(dm_role_parse(dm_role_name((enum dm_role)i), &r, &e), 0);
        assert_int_equal(r, i);
    }
    assert_int_equal(dm_role_parse("text_encoder", &r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "text_encoder"));
    assert_int_equal(dm_family_parse("sd4", &f, &e), GENAI_EBAD_ARG);

    dm_detection d = detect_st("sdxl_lightning_8step.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    json_t *j = dm_detection_to_json(&d);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "family")), "sdxl");
    assert_string_equal(json_string_value(json_object_get(j, "variant")), "lightning");
    assert_string_equal(json_string_value(json_object_get(j, "confidence")), "high");
    assert_int_equal(json_integer_value(json_object_get(j, "steps_hint")), 8);
    json_t *comps = json_object_get(j, "components");
    assert_int_equal(json_object_size(comps), 4);
    assert_int_equal(json_integer_value(json_object_get(comps, "clip_g")),
                     (json_int_t)d.st.bytes[DM_COMP_CLIP_G]);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "structure"), "attn_heads")), 10);

    /* Back from JSON (a detection stored in the registry): the same fields,
     * so settings and planner inputs come out the same. */
    dm_detection back;
    assert_int_equal(dm_detection_from_json(j, &back, &e), 0);
    assert_int_equal(back.family, d.family);
    assert_int_equal(back.variant, d.variant);
    assert_int_equal(back.confidence, d.confidence);
    assert_int_equal(back.variant_confidence, d.variant_confidence);
    assert_int_equal(back.steps_hint, 8);
    assert_int_equal(back.present, d.present);
    assert_int_equal(back.in_model, d.in_model);
    assert_string_equal(back.evidence, d.evidence);
    assert_string_equal(back.variant_evidence, d.variant_evidence);
    assert_memory_equal(&back.st, &d.st, sizeof(d.st));
    json_decref(j);
    /* Hand-edited rows: names and types checked, the key named. */
    const char *bad[][2] = {
        {"{\"family\":\"sd4\"}", "'family'"},
        {"{\"family\":\"sd1\",\"variant\":\"schnell\"}", "'variant'"},
        {"{\"confidence\":\"sure\"}", "'confidence'"},
        {"{\"evidence\":7}", "'evidence'"},
        {"{\"components\":{\"vae\":-1}}", "'vae'"},
        {"{\"structure\":{\"depth\":99999999999}}", "'depth'"},
        {"[]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = json_loads(bad[i][0], 0, NULL);
        assert_non_null(j);
        memset(&back, 0x5a, sizeof(back));
        assert_int_equal(dm_detection_from_json(j, &back, &e), GENAI_ECORRUPT);
        assert_non_null(strstr(e.detail, bad[i][1]));
        assert_int_equal(back.steps_hint, 0x5a5a5a5a); /* untouched */
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sd1),
        cmocka_unit_test(test_sd2_and_name_hints),
        cmocka_unit_test(test_sdxl_variants),
        cmocka_unit_test(test_sd3_gguf_components),
        cmocka_unit_test(test_flux),
        cmocka_unit_test(test_sdxl_plan_heads),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_sd1_split_refused),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_sdcpp_versions),
        cmocka_unit_test(test_names_and_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
