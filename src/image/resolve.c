/*
 * resolve.c - the model's settings applied to an image request (see
 * resolve.h).
 */
#include "image/resolve.h"

#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MOD "image"

const char *img_model_label(const dm_settings *s, char *buf, size_t n)
{
    const char *v = dm_variant_name(s->variant);
    if (s->variant == DM_VARIANT_BASE)
        snprintf(buf, n, "%s", dm_family_display(s->family));
    else
        snprintf(buf, n, "%s %c%s", dm_family_display(s->family), v[0] - 'a' + 'A', v + 1);
    return buf;
}

int img_resolve(img_request *req, img_resolution *out, genai_error *err)
{
    img_resolution res;
    memset(&res, 0, sizeof(res));
    dm_component comps[DM_ROLE__COUNT];
    size_t n = 0;
    const char *model = req->model != NULL ? req->model : req->diffusion_model;
    if (model == NULL)
        return err_set(err, GENAI_EBAD_ARG, "model: give a checkpoint or a diffusion model");
    comps[n++] = (dm_component){DM_ROLE_MODEL, model};
    if (req->clip_l != NULL)
        comps[n++] = (dm_component){DM_ROLE_CLIP_L, req->clip_l};
    if (req->clip_g != NULL)
        comps[n++] = (dm_component){DM_ROLE_CLIP_G, req->clip_g};
    if (req->t5xxl != NULL)
        comps[n++] = (dm_component){DM_ROLE_T5XXL, req->t5xxl};
    if (req->vae != NULL)
        comps[n++] = (dm_component){DM_ROLE_VAE, req->vae};

    genai_error de;
    genai_error_clear(&de);
    int rc = dm_detect_paths(comps, n, &res.detection, &de);
    if (rc == -ENOMEM)
        return err_set(err, rc, "reading the model: out of memory");
    if (rc < 0) {
        /* Not a file the diffusion reader knows (or not there: sd-cli will
         * say so in its own words, as it always did). */
        snprintf(res.note, sizeof(res.note),
                 "model settings not applied: the files are not a diffusion model genai can "
                 "read (%.300s)",
                 de.detail);
        memset(&res.detection, 0, sizeof(res.detection));
        goto unknown;
    }
    if (res.detection.family == DM_FAMILY_UNKNOWN) {
        snprintf(res.note, sizeof(res.note),
                 "model settings not applied: unknown model family (%.330s)",
                 res.detection.evidence);
        goto unknown;
    }
    if ((rc = dm_check_components(&res.detection, err)) < 0)
        return rc;
    if ((rc = dm_settings_for_detection(&res.detection, &res.settings, err)) < 0)
        return rc;
    if ((rc = dm_settings_override_text(&res.settings, req->settings_json, err)) < 0)
        return err_prefix(err, "the model's settings override");
    dm_request dr = {.width = req->width,
                     .height = req->height,
                     .steps = req->steps,
                     .has_cfg = req->has_cfg,
                     .cfg = req->cfg_scale,
                     .has_guidance = req->has_guidance,
                     .guidance = req->guidance,
                     .sampler = req->sampler,
                     .scheduler = req->scheduler,
                     .negative_prompt = req->negative_prompt,
                     .policy = (enum dm_policy)req->policy};
    if ((rc = dm_resolve(&res.settings, &dr, &res.resolved, err)) < 0)
        return rc;
    if ((rc = dm_plan_model(&res.detection, &res.plan, err)) < 0)
        return rc;

    /* Every allocation first, so a failure leaves req as it was. */
    const dm_resolved *r = &res.resolved;
    char *sampler = mem_strdup(r->sampler);
    char *scheduler = mem_strdup(r->scheduler);
    if (sampler == NULL || scheduler == NULL) {
        mem_free(sampler);
        mem_free(scheduler);
        return err_set(err, -ENOMEM, "out of memory");
    }
    mem_free(req->sampler);
    mem_free(req->scheduler);
    req->sampler = sampler;
    req->scheduler = scheduler;
    if (!r->use_negative) {
        mem_free(req->negative_prompt);
        req->negative_prompt = NULL;
    }
    req->width = r->width;
    req->height = r->height;
    req->steps = r->steps;
    req->has_cfg = 1;
    req->cfg_scale = r->cfg;
    req->has_guidance = r->use_guidance;
    req->guidance = r->use_guidance ? r->guidance : 0.0;
    req->settings_applied = 1;
    res.known = 1;
    *out = res;
    return 0;

unknown:
    LOG_DEBUG(MOD, "%s", res.note);
    req->settings_applied = 1;
    *out = res;
    return 0;
}

int img_submit_resolve(const img_request *req, img_request *copy, img_resolution **res,
                       genai_error *err)
{
    memset(copy, 0, sizeof(*copy));
    *res = NULL;
    int rc = img_request_validate(req, err);
    if (rc < 0 || req->settings_applied)
        return rc;
    img_resolution *r = mem_calloc(1, sizeof(*r));
    img_request c;
    if (r == NULL || img_request_copy(&c, req) < 0) {
        mem_free(r);
        return err_set(err, -ENOMEM, "queueing an image job");
    }
    if ((rc = img_resolve(&c, r, err)) < 0) {
        img_request_free(&c);
        mem_free(r);
        return rc;
    }
    for (size_t i = 0; i < r->resolved.n_warnings; i++)
        LOG_INFO(MOD, "%s", r->resolved.warnings[i].message);
    *copy = c;
    *res = r;
    return 0;
}

json_t *img_resolution_to_json(const img_resolution *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int bad = 0;
    if (!r->known) {
        bad |= json_object_set_new(o, "model", json_null());
        bad |= json_object_set_new(o, "note", json_string(r->note));
        bad |= json_object_set_new(o, "warnings", json_array());
        goto out;
    }
    const dm_detection *d = &r->detection;
    char label[64];
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s}", "family", dm_family_name(d->family),
                          "family_name", img_model_label(&r->settings, label, sizeof(label)),
                          "variant", dm_variant_name(r->settings.variant), "confidence",
                          dm_confidence_name(d->confidence), "evidence", d->evidence);
    json_t *s = dm_resolved_to_json(&r->resolved);
    json_t *w = s != NULL ? json_object_get(s, "warnings") : NULL;
    bad |= m == NULL || s == NULL;
    if (w != NULL)
        json_incref(w);
    bad |= json_object_set_new(o, "model", m);
    bad |= json_object_set_new(o, "settings", s);
    bad |= json_object_set_new(o, "warnings", w != NULL ? w : json_array());
out:
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}
