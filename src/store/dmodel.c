/*
 * dmodel.c - diffusion models in the registry (see dmodel.h).
 *
 * The glue between the registry's rows (roles and paths as text, detection
 * and override as JSON text) and the diffusion module's types. Detection
 * reads file headers only (tens of kilobytes for a checkpoint), so it runs
 * wherever a model is registered or a job is prepared.
 */
#include "store/dmodel.h"

#include "core/alloc.h"
#include "core/log.h"
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#define MOD "store"

int store_dm_components(const store_model *m, dm_component *comps, size_t *n, genai_error *err)
{
    uint32_t seen = 0;
    size_t k = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        enum dm_role role;
        if (dm_role_parse(m->files[i].role, &role, NULL) < 0)
            return err_set(err, GENAI_EBAD_ARG,
                           "model %s: file role '%s' names no component; register the model "
                           "again with --clip-l, --clip-g, --t5xxl or --vae",
                           m->id, m->files[i].role);
        if (seen & (1u << role))
            return err_set(err, GENAI_EBAD_ARG, "model %s: two files with role %s", m->id,
                           dm_role_name(role));
        seen |= 1u << role;
        comps[k].role = role;
        comps[k].path = m->files[i].path;
        k++;
    }
    *n = k;
    return 0;
}

static char *detection_text(const dm_detection *d)
{
    json_t *o = dm_detection_to_json(d);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return NULL;
    char *copy = mem_strdup(text); /* jansson's allocator is not ours */
    free(text);
    return copy;
}

int store_dm_inspect(const dm_component *comps, size_t n, int check, char **detection_json,
                     genai_error *err)
{
    dm_detection d;
    genai_error de;
    genai_error_clear(&de);
    int rc = dm_detect_paths(comps, n, &d, &de);
    if (rc == -ENOMEM)
        return err_set(err, rc, "out of memory");
    if (rc == GENAI_EBAD_ARG)
        return err_set(err, rc, "%s", de.detail);
    if (rc < 0) {
        /* Not a file the diffusion reader knows (e.g. a format it lacks):
         * registered as unknown, with the reason kept for `genai show`. */
        memset(&d, 0, sizeof(d));
        snprintf(d.evidence, sizeof(d.evidence), "files not readable as a diffusion model: %.300s",
                 de.detail);
        LOG_WARN(MOD, "%s", d.evidence);
    } else if (d.family == DM_FAMILY_UNKNOWN) {
        LOG_WARN(MOD, "unknown diffusion model family: %s", d.evidence);
    } else if ((rc = dm_check_components(&d, check ? err : &de)) < 0) {
        if (check)
            return rc;
        LOG_WARN(MOD, "%s", de.detail);
    }
    char *text = detection_text(&d);
    if (text == NULL)
        return err_set(err, -ENOMEM, "out of memory");
    *detection_json = text;
    return 0;
}

int store_dm_detection(const store_model *m, dm_detection *out, genai_error *err)
{
    if (m->detection_json != NULL) {
        json_error_t je;
        json_t *o = json_loads(m->detection_json, JSON_REJECT_DUPLICATES, &je);
        if (o == NULL)
            return err_set(err, GENAI_ECORRUPT, "model %s: stored detection: %s", m->id, je.text);
        int rc = dm_detection_from_json(o, out, err);
        json_decref(o);
        return rc < 0 ? err_prefix(err, "model %s", m->id) : 0;
    }
    dm_component comps[DM_ROLE__COUNT];
    size_t n = 0;
    int rc = store_dm_components(m, comps, &n, err);
    if (rc < 0)
        return rc;
    return dm_detect_paths(comps, n, out, err);
}

int store_dm_settings(const store_model *m, const dm_detection *d, dm_settings *out,
                      genai_error *err)
{
    dm_settings s;
    int rc = dm_settings_for_detection(d, &s, err);
    if (rc < 0)
        return rc;
    if ((rc = dm_settings_override_text(&s, m->settings_json, err)) < 0)
        return err_prefix(err, "model %s: stored settings", m->id);
    *out = s;
    return 0;
}

int store_set_settings(store *s, const char *id, const char *override_json, genai_error *err)
{
    store_model m;
    int rc = store_db_get_model(store_registry(s), id, &m, err);
    if (rc < 0)
        return rc;
    char *compact = NULL;
    if (m.kind != STORE_KIND_DIFFUSION) {
        rc = err_set(err, GENAI_EBAD_ARG, "model %s is an LLM: settings are for diffusion models",
                     id);
        goto out;
    }
    dm_detection d;
    dm_settings st;
    if ((rc = store_dm_detection(&m, &d, err)) < 0)
        goto out;
    if (d.family == DM_FAMILY_UNKNOWN) {
        rc = err_set(err, GENAI_EUNSUPPORTED,
                     "model %s: its family is unknown (%s), so it has no settings to override", id,
                     d.evidence);
        goto out;
    }
    if ((rc = dm_settings_for_detection(&d, &st, err)) < 0)
        goto out;
    if (override_json != NULL && override_json[0] != '\0') {
        json_error_t je;
        json_t *o = json_loads(override_json, JSON_REJECT_DUPLICATES, &je);
        if (o == NULL) {
            rc = err_set(err, GENAI_EBAD_ARG, "settings: not JSON: %s", je.text);
            goto out;
        }
        rc = dm_settings_override(&st, o, err);
        char *text = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (rc < 0)
            goto out;
        compact = text != NULL ? mem_strdup(text) : NULL;
        free(text);
        if (compact == NULL) {
            rc = err_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = store_db_set_settings(store_registry(s), id, compact, err);
out:
    mem_free(compact);
    store_model_free(&m);
    return rc;
}
