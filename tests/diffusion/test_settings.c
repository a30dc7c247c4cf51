/*
 * test_settings.c - the settings table, registry overrides (JSON in and
 * out), and requests resolved against a model: fields applied from the
 * model, adjusted with warnings, refused under the strict policy.
 */
#include "cmocka_all.h"

#include "diffusion/settings.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static dm_settings builtin(enum dm_family f, enum dm_variant v)
{
    dm_settings s;
    genai_error e;
    if (dm_settings_builtin(f, v, &s, &e) != 0)
        fail_msg("%s", e.detail);
    return s;
}

static char *dump(const dm_settings *s)
{
    json_t *j = dm_settings_to_json(s);
    assert_non_null(j);
    char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    assert_non_null(t);
    return t;
}

static void test_table(void **state)
{
    (void)state;
    genai_error e;
    for (unsigned f = 0; f < DM_FAMILY__COUNT; f++) {
        for (unsigned v = 0; v < DM_VARIANT__COUNT; v++) {
            dm_settings s;
            int rc = dm_settings_builtin((enum dm_family)f, (enum dm_variant)v, &s, &e);
            /* A row for exactly the pairs that exist. */
            assert_int_equal(rc == 0, dm_variant_valid((enum dm_family)f, (enum dm_variant)v));
            if (rc != 0) {
                assert_int_equal(rc, GENAI_ENOT_FOUND);
                continue;
            }
            /* Every row passes the checks an override must pass. */
            json_t *empty = json_object();
            assert_int_equal(dm_settings_override(&s, empty, &e), 0);
            json_decref(empty);
            assert_int_equal(s.requires, dm_required_components(s.family));
            /* Distilled rows run without CFG by default, so no negative prompt. */
            assert_int_equal(s.negative_prompt, s.cfg != 1.0);
        }
    }
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_LIGHTNING);
    assert_int_equal(s.width, 1024);
    assert_int_equal(s.steps, 4);
    assert_true(s.cfg == 1.0 && s.cfg_max == 1.0);
    s = builtin(DM_FAMILY_SD1, DM_VARIANT_BASE);
    assert_int_equal(s.width, 512);
    s = builtin(DM_FAMILY_FLUX, DM_VARIANT_BASE);
    assert_true(s.guidance == 3.5);
}

static void test_for_detection(void **state)
{
    (void)state;
    dm_detection d;
    memset(&d, 0, sizeof(d));
    d.family = DM_FAMILY_SDXL;
    d.variant = DM_VARIANT_LIGHTNING;
    d.steps_hint = 2;
    dm_settings s;
    genai_error e;
    assert_int_equal(dm_settings_for_detection(&d, &s, &e), 0);
    assert_int_equal(s.steps, 2);
    d.steps_hint = 30; /* outside 1..8: ignored */
    assert_int_equal(dm_settings_for_detection(&d, &s, &e), 0);
    assert_int_equal(s.steps, 4);
    d.family = DM_FAMILY_UNKNOWN;
    snprintf(d.evidence, sizeof(d.evidence), "no diffusion-model tensors");
    assert_int_equal(dm_settings_for_detection(&d, &s, &e), GENAI_ENOT_FOUND);
    assert_non_null(strstr(e.detail, "unknown model family, so no settings: no diffusion"));
}

static void test_missing_fields_take_model_settings(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_LIGHTNING);
    dm_request rq = {0};
    dm_resolved r;
    genai_error e;
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), 0);
    assert_int_equal(r.width, 1024);
    assert_int_equal(r.height, 1024);
    assert_int_equal(r.steps, 4);
    assert_true(r.cfg == 1.0);
    assert_string_equal(r.sampler, "euler");
    assert_string_equal(r.scheduler, "sgm_uniform");
    assert_int_equal(r.use_guidance, 0);
    assert_int_equal(r.n_warnings, 0);
    assert_int_equal(r.adjusted, 0);
    assert_int_equal(r.defaulted, DM_FIELD_WIDTH | DM_FIELD_HEIGHT | DM_FIELD_STEPS | DM_FIELD_CFG |
                                      DM_FIELD_SAMPLER | DM_FIELD_SCHEDULER);
    assert_int_equal(r.policy, DM_POLICY_ADJUST);

    /* Given fields within range are kept. */
    s = builtin(DM_FAMILY_SD1, DM_VARIANT_BASE);
    dm_request rq2 = {.width = 768,
                      .height = 512,
                      .steps = 30,
                      .has_cfg = 1,
                      .cfg = 5.5,
                      .sampler = "dpm++2m",
                      .negative_prompt = "blurry"};
    assert_int_equal(dm_resolve(&s, &rq2, &r, &e), 0);
    assert_int_equal(r.width, 768);
    assert_int_equal(r.height, 512);
    assert_int_equal(r.steps, 30);
    assert_true(r.cfg == 5.5);
    assert_string_equal(r.sampler, "dpm++2m");
    assert_string_equal(r.scheduler, "discrete");
    assert_int_equal(r.use_negative, 1);
    assert_int_equal(r.defaulted, DM_FIELD_SCHEDULER);
    assert_int_equal(r.n_warnings, 0);

    /* Flux dev: distilled guidance from the model. */
    s = builtin(DM_FAMILY_FLUX, DM_VARIANT_BASE);
    dm_request rq3 = {0};
    assert_int_equal(dm_resolve(&s, &rq3, &r, &e), 0);
    assert_int_equal(r.use_guidance, 1);
    assert_true(r.guidance == 3.5);
    assert_true(r.defaulted & DM_FIELD_GUIDANCE);
}

/* The scene: an app sends CFG 7 and 30 steps to SDXL Lightning. */
static void test_adjust_lightning(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_LIGHTNING);
    dm_request rq = {.width = 1000,
                     .height = 4096,
                     .steps = 30,
                     .has_cfg = 1,
                     .cfg = 7.0,
                     .negative_prompt = "ugly",
                     .has_guidance = 1,
                     .guidance = 3.5};
    dm_resolved r;
    genai_error e;
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), 0);
    assert_int_equal(r.width, 1024); /* aligned up to the multiple */
    assert_int_equal(r.height, 2048);
    assert_int_equal(r.steps, 8);
    assert_true(r.cfg == 1.0);
    assert_int_equal(r.use_negative, 0);
    assert_int_equal(r.use_guidance, 0);
    assert_int_equal(r.adjusted, DM_FIELD_WIDTH | DM_FIELD_HEIGHT | DM_FIELD_STEPS | DM_FIELD_CFG |
                                     DM_FIELD_GUIDANCE | DM_FIELD_NEGATIVE);
    assert_int_equal(r.n_warnings, 6);
    assert_string_equal(r.warnings[0].field, "width");
    assert_string_equal(r.warnings[0].message, "width 1000 adjusted to 1024: SDXL Lightning "
                                               "supports multiples of 64 in 512..2048 (native "
                                               "1024)");
    assert_string_equal(r.warnings[2].field, "steps");
    assert_string_equal(r.warnings[2].message,
                        "steps 30 adjusted to 8: SDXL Lightning supports 1..8 (default 4)");
    assert_string_equal(r.warnings[3].field, "cfg_scale");
    assert_non_null(strstr(r.warnings[3].message, "cfg_scale 7 adjusted to 1"));
    assert_string_equal(r.warnings[4].field, "guidance");
    assert_string_equal(r.warnings[5].field, "negative_prompt");

    json_t *j = dm_resolved_to_json(&r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "steps")), 8);
    assert_true(json_is_null(json_object_get(j, "guidance")));
    assert_string_equal(json_string_value(json_object_get(j, "policy")), "adjust");
    json_t *w = json_object_get(j, "warnings");
    assert_int_equal(json_array_size(w), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(w, 2), "field")), "steps");
    json_decref(j);

    /* Below the minimum goes to the minimum. */
    s = builtin(DM_FAMILY_SD1, DM_VARIANT_LCM);
    dm_request low = {.width = 64, .steps = 1, .has_cfg = 1, .cfg = 0.5};
    assert_int_equal(dm_resolve(&s, &low, &r, &e), 0);
    assert_int_equal(r.width, 256);
    assert_int_equal(r.steps, 2);
    assert_true(r.cfg == 1.0);
}

static void test_strict_refuses(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_LIGHTNING);
    dm_resolved r;
    memset(&r, 0x5a, sizeof(r));
    dm_resolved before = r;
    genai_error e;
    dm_request rq = {.steps = 30, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), GENAI_EBAD_ARG);
    assert_string_equal(e.detail, "steps 30: SDXL Lightning supports 1..8 (default 4)");
    assert_memory_equal(&r, &before, sizeof(r)); /* untouched on failure */

    dm_request w = {.width = 1000, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &w, &r, &e), GENAI_EBAD_ARG);
    assert_string_equal(e.detail,
                        "width 1000: SDXL Lightning supports multiples of 64 in 512..2048 "
                        "(native 1024)");
    dm_request c = {.has_cfg = 1, .cfg = 7, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &c, &r, &e), GENAI_EBAD_ARG);
    assert_string_equal(e.detail, "cfg_scale 7: SDXL Lightning supports 1..1 (default 1)");
    dm_request n = {.negative_prompt = "x", .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &n, &r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "negative_prompt: SDXL Lightning runs without"));
    dm_request g = {.has_guidance = 1, .guidance = 2, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &g, &r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "guidance 2: SDXL Lightning has no distilled-guidance"));

    /* Flux dev: guidance out of range. */
    s = builtin(DM_FAMILY_FLUX, DM_VARIANT_BASE);
    dm_request fg = {.has_guidance = 1, .guidance = 20, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &fg, &r, &e), GENAI_EBAD_ARG);
    assert_string_equal(e.detail, "guidance 20: Flux supports 1..10 (default 3.5)");
    fg.policy = DM_POLICY_ADJUST;
    assert_int_equal(dm_resolve(&s, &fg, &r, &e), 0);
    assert_true(r.guidance == 10.0);
    fg.guidance = NAN;
    assert_int_equal(dm_resolve(&s, &fg, &r, &e), 0);
    assert_true(r.guidance == 3.5);

    /* Valid requests pass strict untouched. */
    s = builtin(DM_FAMILY_SDXL, DM_VARIANT_BASE);
    dm_request ok = {.width = 832, .height = 1216, .steps = 25, .policy = DM_POLICY_STRICT};
    assert_int_equal(dm_resolve(&s, &ok, &r, &e), 0);
    assert_int_equal(r.policy, DM_POLICY_STRICT);
    assert_int_equal(r.width, 832);
    assert_int_equal(r.height, 1216);
}

static void test_negative_at_cfg1_warns_even_strict(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_BASE);
    dm_request rq = {.has_cfg = 1, .cfg = 1.0, .negative_prompt = "x", .policy = DM_POLICY_STRICT};
    dm_resolved r;
    genai_error e;
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), 0);
    assert_int_equal(r.use_negative, 0);
    assert_int_equal(r.n_warnings, 1);
    assert_string_equal(r.warnings[0].message,
                        "negative_prompt ignored: it has no effect at cfg_scale 1");
}

static void test_policy_from_settings(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SD1, DM_VARIANT_BASE);
    genai_error e;
    assert_int_equal(dm_settings_override_text(&s, "{\"policy\":\"strict\"}", &e), 0);
    assert_int_equal(s.policy, DM_POLICY_STRICT);
    dm_request rq = {.width = 4096};
    dm_resolved r;
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), GENAI_EBAD_ARG);
    assert_non_null(strstr(e.detail, "width 4096: SD 1.x supports multiples of 64 in 256..1024"));
    /* A request may ask for adjust explicitly. */
    rq.policy = DM_POLICY_ADJUST;
    assert_int_equal(dm_resolve(&s, &rq, &r, &e), 0);
    assert_int_equal(r.width, 1024);
}

static void test_override(void **state)
{
    (void)state;
    dm_settings s = builtin(DM_FAMILY_SDXL, DM_VARIANT_LIGHTNING);
    genai_error e;
    assert_int_equal(
        dm_settings_override_text(&s,
                                  "{\"steps\":{\"default\":6},\"sampler\":\"dpm++2m\","
                                  "\"size\":{\"max\":1536},\"width\":832,\"height\":1216}",
                                  &e),
        0);
    assert_int_equal(s.steps, 6);
    assert_int_equal(s.steps_max, 8);
    assert_string_equal(s.sampler, "dpm++2m");
    assert_int_equal(s.side_max, 1536);
    assert_int_equal(s.width, 832);

    /* Each bad override names its key and changes nothing. */
    const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"steps\":{\"default\":20}}", "settings 'steps' 20 (1..8)"},
        {"{\"stepz\":4}", "unknown key 'stepz'"},
        {"{\"steps\":{\"dflt\":4}}", "settings 'steps': unknown key 'dflt'"},
        {"{\"steps\":4}", "settings 'steps': expected an object"},
        {"{\"cfg\":{\"max\":31}}", "settings 'cfg'"},
        {"{\"cfg\":{\"default\":\"high\"}}", "settings 'cfg': expected a number"},
        {"{\"width\":1000}", "settings 'width' 1000: must be a multiple of 64"},
        {"{\"width\":-64}", "settings 'width': expected a non-negative integer"},
        {"{\"size\":{\"min\":32}}", "settings 'size' 32..1536"},
        {"{\"size\":{\"multiple\":3}}", "settings 'size.multiple' 3"},
        {"{\"sampler\":\"Euler A\"}", "settings 'sampler'"},
        {"{\"negative_prompt\":\"yes\"}", "expected a boolean"},
        {"{\"policy\":\"lenient\"}", "policy 'lenient'"},
        {"{\"guidance\":{\"default\":3}}", "settings 'guidance' 3 (0..0)"},
        {"[1]", "expected a JSON object"},
        {"{\"steps\":", "invalid JSON"},
    };
    char *before = dump(&s);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = dm_settings_override_text(&s, bad[i].json, &e);
        if (rc != GENAI_EBAD_ARG || strstr(e.detail, bad[i].want) == NULL)
            fail_msg("%s: got %d '%s', want '%s'", bad[i].json, rc, e.detail, bad[i].want);
        char *after = dump(&s);
        assert_string_equal(before, after);
        free(after);
    }
    free(before);

    /* guidance: null turns Flux dev's distilled guidance off. */
    dm_settings f = builtin(DM_FAMILY_FLUX, DM_VARIANT_BASE);
    assert_int_equal(dm_settings_override_text(&f, "{\"guidance\":null}", &e), 0);
    assert_true(f.guidance == 0 && f.guidance_max == 0);
    assert_int_equal(dm_settings_override_text(&f, NULL, &e), 0);
    assert_int_equal(dm_settings_override_text(&f, "", &e), 0);
}

static void test_json_roundtrip(void **state)
{
    (void)state;
    for (unsigned f = 1; f < DM_FAMILY__COUNT; f++) {
        for (unsigned v = 0; v < DM_VARIANT__COUNT; v++) {
            dm_settings s, t;
            if (dm_settings_builtin((enum dm_family)f, (enum dm_variant)v, &s, NULL) != 0)
                continue;
            char *text = dump(&s);
            /* Stored back as an override over SD1 base, it gives the same
             * settings (family, variant and requires are read-only). */
            t = builtin(DM_FAMILY_SD1, DM_VARIANT_BASE);
            genai_error e;
            if (dm_settings_override_text(&t, text, &e) != 0)
                fail_msg("%s: %s", text, e.detail);
            t.family = s.family;
            t.variant = s.variant;
            t.requires = s.requires;
            char *again = dump(&t);
            assert_string_equal(text, again);
            free(text);
            free(again);
        }
    }
    dm_settings s = builtin(DM_FAMILY_FLUX, DM_VARIANT_SCHNELL);
    json_t *j = dm_settings_to_json(&s);
    assert_string_equal(json_string_value(json_object_get(j, "family")), "flux");
    assert_string_equal(json_string_value(json_object_get(j, "variant")), "schnell");
    assert_true(json_is_null(json_object_get(j, "guidance")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "steps"), "max")), 4);
    json_t *req = json_object_get(j, "requires");
    assert_int_equal(json_array_size(req), 4);
    assert_string_equal(json_string_value(json_array_get(req, 2)), "t5xxl");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_for_detection),
        cmocka_unit_test(test_missing_fields_take_model_settings),
        cmocka_unit_test(test_adjust_lightning),
        cmocka_unit_test(test_strict_refuses),
        cmocka_unit_test(test_negative_at_cfg1_warns_even_strict),
        cmocka_unit_test(test_policy_from_settings),
        cmocka_unit_test(test_override),
        cmocka_unit_test(test_json_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
