/*
 * shapes.c - JSON shapes of registered models (see shapes.h).
 *
 * The cached GGUF profile is stored as JSON text in the registry; it is parsed
 * back here so that clients get an object, and a row whose cached text does
 * not parse (written by a buggy or newer genai) shows "profile": null rather
 * than failing the whole listing.
 */
#include "api/shapes.h"

#include "store/dmodel.h"
#include "store/footprint_db.h"
#include "store/prune.h"

#include <errno.h>

/* "detection", "settings" (effective: the family's built-in row with the
 * registry override merged; null when the family is unknown) and
 * "settings_override" (the registry's, or null) of a diffusion model, so
 * apps can show the model's own defaults and ranges (docs/diffusion-models.md). */
static int add_dm_json(json_t *o, const store_model *m)
{
    dm_detection d;
    dm_settings st;
    json_t *det = NULL, *set = NULL, *ovr = NULL;
    if (store_dm_detection(m, &d, NULL) == 0) {
        det = dm_detection_to_json(&d);
        if (d.family != DM_FAMILY_UNKNOWN && store_dm_settings(m, &d, &st, NULL) == 0)
            set = dm_settings_to_json(&st);
    }
    if (m->settings_json != NULL)
        ovr = json_loads(m->settings_json, 0, NULL);
    int bad = 0;
    bad |= json_object_set_new(o, "detection", det != NULL ? det : json_null());
    bad |= json_object_set_new(o, "settings", set != NULL ? set : json_null());
    bad |= json_object_set_new(o, "settings_override", ovr != NULL ? ovr : json_null());
    return bad;
}

json_t *api_model_json(const store_model *m)
{
    json_t *files = json_array();
    json_t *o = json_object();
    if (files == NULL || o == NULL)
        goto fail;
    for (size_t i = 0; i < m->n_files; i++) {
        const store_file *f = &m->files[i];
        json_t *jf =
            json_pack("{s:s, s:s, s:s, s:I, s:b}", "role", f->role, "path", f->path, "sha256",
                      f->sha256, "size", (json_int_t)f->size, "managed", f->managed);
        if (jf == NULL)
            goto fail;
        if (f->url != NULL && json_object_set_new(jf, "url", json_string(f->url)) != 0) {
            json_decref(jf);
            goto fail;
        }
        if (json_array_append_new(files, jf) != 0)
            goto fail;
    }
    json_t *profile = m->profile_json != NULL ? json_loads(m->profile_json, 0, NULL) : NULL;
    int bad = 0;
    bad |= json_object_set_new(o, "id", json_string(m->id));
    bad |= json_object_set_new(o, "name", json_string(m->name));
    bad |= json_object_set_new(o, "kind", json_string(store_kind_name(m->kind)));
    bad |= json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    bad |= json_object_set_new(o, "sha256", json_string(m->sha256));
    bad |=
        json_object_set_new(o, "source", m->source_url ? json_string(m->source_url) : json_null());
    bad |= json_object_set_new(o, "hf_repo", m->hf_repo ? json_string(m->hf_repo) : json_null());
    bad |= json_object_set_new(o, "hf_revision",
                               m->hf_revision ? json_string(m->hf_revision) : json_null());
    bad |= json_object_set_new(o, "added_at", json_integer((json_int_t)m->added_at));
    bad |= json_object_set_new(o, "profile", profile != NULL ? profile : json_null());
    bad |= json_object_set_new(o, "files", files);
    if (m->kind == STORE_KIND_DIFFUSION)
        bad |= add_dm_json(o, m);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;

fail:
    json_decref(files);
    json_decref(o);
    return NULL;
}

/* One footprint row as api_model_detail_json lists it; NULL without memory. */
static json_t *footprint_json(const store_footprint *f)
{
    plan_demand d;
    genai_error e;
    if (store_fpdb_from_row(f, &d, &e) < 0)
        return json_pack("{s:s, s:I, s:s}", "config", f->config_key, "measured_at",
                         (json_int_t)f->measured_at, "refused", e.detail);
    json_t *gpu = json_array();
    for (uint32_t i = 0; gpu != NULL && i < d.n_gpus; i++) {
        if (json_array_append_new(gpu, json_integer((json_int_t)d.gpu[i])) != 0) {
            json_decref(gpu);
            gpu = NULL;
        }
    }
    if (gpu == NULL)
        return NULL;
    return json_pack("{s:s, s:I, s:s?, s:I, s:I, s:o}", "config", f->config_key, "measured_at",
                     (json_int_t)f->measured_at, "runtime_build", f->runtime_build,
                     "host_anon_bytes", (json_int_t)d.host_anon, "host_file_bytes",
                     (json_int_t)d.host_file, "gpu_bytes", gpu);
}

int api_model_detail_json(store_db *db, const store_model *m, json_t **out, genai_error *err)
{
    store_footprint *fps = NULL;
    size_t n = 0;
    int rc = store_db_list_footprints(db, m->id, &fps, &n, err);
    if (rc < 0)
        return rc;
    json_t *o = api_model_json(m);
    json_t *arr = json_array();
    int bad = o == NULL || arr == NULL;
    for (size_t i = 0; !bad && i < n; i++)
        bad = json_array_append_new(arr, footprint_json(&fps[i])) != 0;
    store_footprint_list_free(fps, n);
    if (bad || json_object_set_new(o, "footprints", arr) != 0) {
        if (!bad)
            arr = NULL; /* set_new took it, even on failure */
        json_decref(arr);
        json_decref(o);
        return err_set(err, -ENOMEM, "describing model %s", m->id);
    }
    *out = o;
    return 0;
}

json_t *api_model_openai_json(const store_model *m)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", m->id, "object", "model", "created",
                     (json_int_t)m->added_at, "owned_by", "genai");
}

int api_models_json(store_db *db, int openai, json_t **out, genai_error *err)
{
    store_model *v = NULL;
    size_t n = 0;
    int rc = store_db_list_models(db, &v, &n, err);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    if (arr == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        json_t *one = openai ? api_model_openai_json(&v[i]) : api_model_json(&v[i]);
        if (one == NULL || json_array_append_new(arr, one) != 0)
            goto nomem;
    }
    store_model_list_free(v, n);
    *out = arr;
    return 0;

nomem:
    json_decref(arr);
    store_model_list_free(v, n);
    return err_set(err, -ENOMEM, "listing models");
}

json_t *api_prune_json(const store_prune_report *r)
{
    json_t *files = json_array();
    json_t *o =
        json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run", r->dry_run, "removed",
                  (json_int_t)r->n_removed, "bytes_freed", (json_int_t)r->bytes_freed, "skipped",
                  (json_int_t)r->n_skipped, "failed", (json_int_t)r->n_failed, "folders_removed",
                  (json_int_t)r->n_dirs_removed, "partials_kept", (json_int_t)r->n_kept_partial,
                  "partial_bytes_kept", (json_int_t)r->bytes_partial);
    if (files == NULL || o == NULL)
        goto fail;
    for (size_t i = 0; i < r->n_items; i++) {
        const store_prune_item *it = &r->items[i];
        json_t *f =
            json_pack("{s:s, s:I, s:b, s:s}", "path", it->path, "size", (json_int_t)it->size,
                      "partial", it->partial, "action", store_prune_action_name(it->action));
        if (f != NULL && it->action == STORE_PRUNE_FAILED)
            json_object_set_new(f, "error", json_string(genai_err_name(it->error)));
        if (f == NULL || json_array_append_new(files, f) != 0)
            goto fail;
    }
    if (json_object_set_new(o, "files", files) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
fail:
    json_decref(files);
    json_decref(o);
    return NULL;
}
