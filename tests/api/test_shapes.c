/*
 * test_shapes.c - the JSON shape of a registered model (src/api/shapes.c),
 * which the CLI's --json, the C library and the HTTP API all give. For a
 * diffusion model it must report the family and the effective generation
 * settings (built-in row merged with the registry override), so apps can
 * show the model's own defaults.
 */
#include "cmocka_all.h"

#include "api/shapes.h"
#include "diffusion/family.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *sdxl_lightning_detection(void)
{
    dm_detection d;
    memset(&d, 0, sizeof(d));
    d.family = DM_FAMILY_SDXL;
    d.variant = DM_VARIANT_LIGHTNING;
    d.confidence = DM_CONF_HIGH;
    d.variant_confidence = DM_CONF_HIGH;
    snprintf(d.evidence, sizeof(d.evidence), "conditioner.embedders.1 (test)");
    json_t *j = dm_detection_to_json(&d);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(text);
    return text;
}

static store_model diffusion_model(char *detection, const char *override)
{
    static store_file file = {.role = "model",
                              .path = "/nonexistent/sdxl-lightning.safetensors",
                              .sha256 = "00",
                              .size = 1};
    store_model m;
    memset(&m, 0, sizeof(m));
    m.id = "sdxl-lightning";
    m.name = "SDXL Lightning";
    m.kind = STORE_KIND_DIFFUSION;
    m.sha256 = "00";
    m.files = &file;
    m.n_files = 1;
    m.detection_json = detection;
    m.settings_json = (char *)override;
    return m;
}

static json_int_t steps_default(json_t *o)
{
    json_t *steps = json_object_get(json_object_get(o, "settings"), "steps");
    assert_non_null(steps);
    return json_integer_value(json_object_get(steps, "default"));
}

static void test_diffusion_model_reports_settings(void **state)
{
    (void)state;
    char *det = sdxl_lightning_detection();
    store_model m = diffusion_model(det, NULL);
    json_t *o = api_model_json(&m);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "diffusion");
    json_t *d = json_object_get(o, "detection");
    assert_true(json_is_object(d));
    json_t *s = json_object_get(o, "settings");
    assert_true(json_is_object(s));
    assert_string_equal(json_string_value(json_object_get(s, "family")), "sdxl");
    assert_string_equal(json_string_value(json_object_get(s, "variant")), "lightning");
    /* Lightning is made for a few steps at CFG 1 (docs/diffusion-models.md). */
    assert_true(steps_default(o) <= 8);
    json_t *cfg = json_object_get(s, "cfg");
    assert_true(json_real_value(json_object_get(cfg, "default")) <= 2.0);
    assert_true(json_is_null(json_object_get(o, "settings_override")));
    json_decref(o);

    /* The registry's override is merged into the effective settings. */
    m = diffusion_model(det, "{\"steps\":{\"default\":6}}");
    o = api_model_json(&m);
    assert_non_null(o);
    assert_int_equal(steps_default(o), 6);
    assert_true(json_is_object(json_object_get(o, "settings_override")));
    json_decref(o);
    free(det);
}

static void test_llm_has_no_diffusion_fields(void **state)
{
    (void)state;
    store_file file = {.role = "model", .path = "/x.gguf", .sha256 = "00", .size = 1};
    store_model m;
    memset(&m, 0, sizeof(m));
    m.id = "tiny";
    m.name = "tiny";
    m.kind = STORE_KIND_LLM;
    m.sha256 = "00";
    m.files = &file;
    m.n_files = 1;
    json_t *o = api_model_json(&m);
    assert_non_null(o);
    assert_null(json_object_get(o, "settings"));
    assert_null(json_object_get(o, "detection"));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diffusion_model_reports_settings),
        cmocka_unit_test(test_llm_has_no_diffusion_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
