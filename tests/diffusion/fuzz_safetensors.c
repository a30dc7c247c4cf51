/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors reader and what
 * is built on it.
 *
 * Parses the input; when it parses, looks every tensor up by name and reads
 * the metadata; then reads the same bytes as a model file (both roles that
 * change name handling), detects the family, derives settings, the planner's
 * inputs and the JSON forms, so that the whole read path sees hostile input.
 * The corpus (tests/data/diffusion/corpus, made by dm_gen_corpus) is
 * replayed by the normal test suite.
 */
#include "diffusion/family.h"
#include "diffusion/model_file.h"
#include "diffusion/safetensors.h"
#include "diffusion/settings.h"
#include "plan/diffusion.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use_json(json_t *j)
{
    if (j == NULL)
        return;
    char *text = json_dumps(j, JSON_COMPACT);
    free(text);
    json_decref(j);
}

static void as_model(const uint8_t *data, size_t size, enum dm_role role)
{
    dm_file *f;
    if (dm_file_parse_buffer(data, size, "fuzz_lightning_4step.safetensors", role, &f, NULL) != 0)
        return;
    const dm_file *files[] = {f};
    dm_detection d;
    if (dm_detect(files, 1, &d, NULL) == 0) {
        use_json(dm_detection_to_json(&d));
        dm_check_components(&d, NULL);
        plan_sd_model m;
        dm_plan_model(&d, &m, NULL);
        dm_settings s;
        if (dm_settings_for_detection(&d, &s, NULL) == 0) {
            use_json(dm_settings_to_json(&s));
            dm_request rq = {.width = 1000, .steps = 30, .has_cfg = 1, .cfg = 7};
            dm_resolved r;
            if (dm_resolve(&s, &rq, &r, NULL) == 0)
                use_json(dm_resolved_to_json(&r));
        }
    }
    dm_file_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_st_file *f;
    if (dm_st_parse_buffer(data, size, &f, NULL) == 0) {
        for (size_t i = 0; i < dm_st_n_tensors(f); i++)
            (void)dm_st_find(f, dm_st_tensor_at(f, i)->name);
        for (size_t i = 0; i < dm_st_n_meta(f); i++)
            (void)dm_st_meta_get(f, dm_st_meta_at(f, i)->key);
        dm_st_close(f);
    }
    as_model(data, size, DM_ROLE_MODEL);
    as_model(data, size, DM_ROLE_VAE);
    return 0;
}
