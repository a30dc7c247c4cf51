/*
 * test_resolve.c - the job flow before an image job is queued
 * (src/image/resolve.h): family fixtures read from real files, the model's
 * settings applied to what a request leaves out, out-of-range fields
 * adjusted with warnings or refused under the strict policy, a missing
 * component refused, an override changing the defaults, files genai cannot
 * read passed through unchanged, and the planner description kept.
 */
#include "cmocka_all.h"

#include "diffusion/dm_fixtures.h"

#include "core/alloc.h"
#include "image/resolve.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct fx {
    char *dir;
    char *sdxl_lightning; /* SDXL checkpoint named as a 4-step Lightning file */
    char *sdxl;           /* the base SDXL checkpoint */
    char *flux;           /* Flux dev DiT alone */
    char *clip_l, *t5, *vae;
    char *text; /* a file that is no model format */
};

static int setup(void **state)
{
    struct fx *f = mem_calloc(1, sizeof(*f));
    f->dir = tu_tmpdir("dm");
    f->sdxl_lightning =
        dmt_write_st(f->dir, "sdxl_lightning_4step.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    f->sdxl = dmt_write_st(f->dir, "sd_xl_base_1.0.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0);
    f->flux = dmt_write_st(f->dir, "flux1-dev.safetensors", dmt_flux_dev_bare, dmt_flux_dev_bare_n,
                           NULL, 0);
    f->clip_l = dmt_write_st(f->dir, "clip_l.safetensors", dmt_clip_l, dmt_clip_l_n, NULL, 0);
    f->t5 = dmt_write_st(f->dir, "t5xxl_fp16.safetensors", dmt_t5xxl, dmt_t5xxl_n, NULL, 0);
    f->vae = dmt_write_st(f->dir, "ae.safetensors", dmt_vae, dmt_vae_n, NULL, 0);
    f->text = tu_path(f->dir, "model.fake");
    FILE *t = fopen(f->text, "we");
    assert_non_null(t);
    fputs("fake-sd-model 1\n", t);
    fclose(t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char **paths[] = {
        &f->sdxl_lightning, &f->sdxl, &f->flux, &f->clip_l, &f->t5, &f->vae, &f->text};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        mem_free(*paths[i]);
    tu_rmdir(f->dir);
    mem_free(f->dir);
    mem_free(f);
    return 0;
}

/* A request that owns its strings, as img_resolve wants. */
static img_request owned(const char *model, const char *diffusion_model)
{
    img_request b = {0}, r;
    b.model = (char *)model;
    b.diffusion_model = (char *)diffusion_model;
    b.prompt = (char *)"a lighthouse at dusk";
    assert_int_equal(img_request_copy(&r, &b), 0);
    return r;
}

static int has_warning(const img_resolution *res, const char *field, const char *text)
{
    for (size_t i = 0; i < res->resolved.n_warnings; i++) {
        const dm_warning *w = &res->resolved.warnings[i];
        if (strcmp(w->field, field) == 0 && strstr(w->message, text) != NULL)
            return 1;
    }
    return 0;
}

/* Fields left out take the model's values: SDXL Lightning's 4 steps at CFG
 * 1, 1024^2, euler / sgm_uniform. */
static void test_defaults_applied(void **state)
{
    struct fx *f = *state;
    img_request r = owned(f->sdxl_lightning, NULL);
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_true(res.known);
    assert_int_equal(res.detection.family, DM_FAMILY_SDXL);
    assert_int_equal(res.settings.variant, DM_VARIANT_LIGHTNING);
    assert_int_equal(r.width, 1024);
    assert_int_equal(r.height, 1024);
    assert_int_equal(r.steps, 4);
    assert_true(r.has_cfg && r.cfg_scale == 1.0);
    assert_false(r.has_guidance);
    assert_string_equal(r.sampler, "euler");
    assert_string_equal(r.scheduler, "sgm_uniform");
    assert_int_equal(res.resolved.n_warnings, 0);
    assert_true(r.settings_applied);
    /* The planner gets the family's structure, not one blob. */
    assert_int_equal(res.plan.attn_heads, 10);
    assert_int_equal(res.plan.attn_token_divisor, 2);
    assert_true(res.plan.te_bytes[PLAN_SD_TE_CLIP_G] > 0);
    img_request_free(&r);

    /* The base model: 20 steps at CFG 7, a negative prompt kept. */
    r = owned(f->sdxl, NULL);
    r.negative_prompt = mem_strdup("blurry");
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_int_equal(r.steps, 20);
    assert_true(r.cfg_scale == 7.0);
    assert_string_equal(r.negative_prompt, "blurry");
    img_request_free(&r);
}

/* The scene: an app's usual 30 steps at CFG 7 on a Lightning model. */
static void test_adjusted_with_warnings(void **state)
{
    struct fx *f = *state;
    img_request r = owned(f->sdxl_lightning, NULL);
    r.steps = 30;
    r.has_cfg = 1;
    r.cfg_scale = 7.0;
    r.width = 1000; /* not a multiple of 64 */
    r.height = 256; /* below the model's 512 */
    r.negative_prompt = mem_strdup("ugly");
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_int_equal(r.steps, 8);
    assert_true(r.cfg_scale == 1.0);
    assert_int_equal(r.width, 1024);
    assert_int_equal(r.height, 512);
    assert_null(r.negative_prompt); /* no effect at CFG 1: dropped */
    assert_true(has_warning(&res, "steps", "steps 30 adjusted to 8: SDXL Lightning supports 1..8"));
    assert_true(has_warning(&res, "cfg_scale", "cfg_scale 7 adjusted to 1"));
    assert_true(has_warning(&res, "width", "width 1000 adjusted to 1024"));
    assert_true(has_warning(&res, "height", "height 256 adjusted to 512"));
    assert_true(has_warning(&res, "negative_prompt", "no effect"));
    /* The response shape carries them. */
    json_t *j = img_resolution_to_json(&res);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "model"), "family")),
                        "sdxl");
    assert_int_equal(json_array_size(json_object_get(j, "warnings")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "settings"), "steps")),
                     8);
    json_decref(j);
    img_request_free(&r);
}

/* Strict: the first field outside the range fails, naming it and the
 * range; the request is left as it was. */
static void test_strict_refused(void **state)
{
    struct fx *f = *state;
    img_request r = owned(f->sdxl_lightning, NULL);
    r.steps = 30;
    r.policy = DM_POLICY_STRICT;
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "steps 30: SDXL Lightning supports 1..8 (default 4)"));
    assert_int_equal(r.steps, 30);
    assert_null(r.sampler);
    assert_false(r.settings_applied);
    /* Within the range, strict accepts. */
    r.steps = 6;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_int_equal(r.steps, 6);
    assert_int_equal(res.resolved.policy, DM_POLICY_STRICT);
    img_request_free(&r);
    /* The model's own policy applies when the request has none. */
    r = owned(f->sdxl_lightning, NULL);
    r.settings_json = mem_strdup("{\"policy\":\"strict\"}");
    r.has_cfg = 1;
    r.cfg_scale = 7.0;
    assert_int_equal(img_resolve(&r, &res, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "cfg_scale 7: SDXL Lightning supports 1..1"));
    r.policy = DM_POLICY_ADJUST; /* the request's policy wins */
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_true(r.cfg_scale == 1.0);
    img_request_free(&r);
}

/* Flux dev: split files; the missing parts are refused by name; the full
 * set gets distilled guidance and --guidance in the argv. */
static void test_flux_components_and_guidance(void **state)
{
    struct fx *f = *state;
    img_request r = owned(NULL, f->flux);
    r.clip_l = mem_strdup(f->clip_l);
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "Flux needs more components: missing t5xxl"));
    assert_non_null(strstr(e.detail, "role t5xxl, sd-cli --t5xxl"));
    assert_non_null(strstr(e.detail, "role vae, sd-cli --vae"));
    r.t5xxl = mem_strdup(f->t5);
    r.vae = mem_strdup(f->vae);
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_int_equal(res.detection.family, DM_FAMILY_FLUX);
    assert_true(r.has_guidance && r.guidance == 3.5);
    assert_true(r.cfg_scale == 1.0);
    assert_int_equal(r.width, 1024);
    assert_int_equal(res.plan.attn_text_tokens, 512);
    assert_true(res.plan.te_bytes[PLAN_SD_TE_T5XXL] > 0);
    r.has_seed = 1;
    img_argv a;
    assert_int_equal(img_argv_build(&r, NULL, "sd-cli", "/d", &a, &e), 0);
    int guidance = 0;
    for (size_t i = 0; i + 1 < a.argc; i++)
        guidance |= strcmp(a.argv[i], "--guidance") == 0 && strcmp(a.argv[i + 1], "3.5") == 0;
    assert_true(guidance);
    img_argv_free(&a);
    img_request_free(&r);

    /* Guidance asked of a model without a guidance input: dropped with a
     * warning (adjust), refused (strict). */
    r = owned(f->sdxl, NULL);
    r.has_guidance = 1;
    r.guidance = 5.0;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_false(r.has_guidance);
    assert_true(has_warning(&res, "guidance", "no distilled-guidance input"));
    img_request_free(&r);
}

/* A registry override changes what a request left out gets; a bad one is
 * refused naming the key. */
static void test_override(void **state)
{
    struct fx *f = *state;
    img_request r = owned(f->sdxl_lightning, NULL);
    r.settings_json = mem_strdup("{\"steps\":{\"default\":6},\"width\":768,\"height\":1280}");
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_int_equal(r.steps, 6);
    assert_int_equal(r.width, 768);
    assert_int_equal(r.height, 1280);
    img_request_free(&r);

    r = owned(f->sdxl_lightning, NULL);
    r.settings_json = mem_strdup("{\"steps\":{\"default\":12}}");
    assert_int_equal(img_resolve(&r, &res, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "'steps' 12 (1..8)"));
    img_request_free(&r);
}

/* Files the diffusion reader does not know run as given, with a note. */
static void test_unreadable_passes_through(void **state)
{
    struct fx *f = *state;
    img_request r = owned(f->text, NULL);
    r.steps = 30;
    img_resolution res;
    genai_error e;
    assert_int_equal(img_resolve(&r, &res, &e), 0);
    assert_false(res.known);
    assert_non_null(strstr(res.note, "not a diffusion model genai can read"));
    assert_int_equal(r.steps, 30);
    assert_int_equal(r.width, 0);
    assert_null(r.sampler);
    json_t *j = img_resolution_to_json(&res);
    assert_true(json_is_null(json_object_get(j, "model")));
    json_decref(j);
    img_request_free(&r);

    /* img_submit_resolve: a copy when applied, nothing when already done. */
    img_request b = {0}, c;
    b.model = f->sdxl_lightning;
    b.prompt = (char *)"x";
    img_resolution *rp = NULL;
    assert_int_equal(img_submit_resolve(&b, &c, &rp, &e), 0);
    assert_non_null(rp);
    assert_int_equal(c.steps, 4);
    assert_int_equal(b.steps, 0); /* the caller's request is not touched */
    img_request_free(&c);
    mem_free(rp);
    b.settings_applied = 1;
    assert_int_equal(img_submit_resolve(&b, &c, &rp, &e), 0);
    assert_null(rp);
    assert_null(c.model);
}

/* Every allocation failing in turn: an error, never a half-changed request. */
static void test_out_of_memory(void **state)
{
    struct fx *f = *state;
    for (unsigned long n = 1; n < 400; n++) {
        img_request r = owned(f->sdxl_lightning, NULL);
        img_resolution res;
        genai_error e;
        mem_fail_after(n, 1);
        int rc = img_resolve(&r, &res, &e);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(r.steps, 4);
            img_request_free(&r);
            return;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(r.steps, 0);
        assert_null(r.sampler);
        img_request_free(&r);
    }
    fail_msg("img_resolve never succeeded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_applied),
        cmocka_unit_test(test_adjusted_with_warnings),
        cmocka_unit_test(test_strict_refused),
        cmocka_unit_test(test_flux_components_and_guidance),
        cmocka_unit_test(test_override),
        cmocka_unit_test(test_unreadable_passes_through),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
