/*
 * status.c - /health and /props parsing (see status.h) with jansson.
 */
#include "llm/status.h"

#include "core/alloc.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

static json_t *load(const char *body, size_t len, genai_error *err, int *rc)
{
    if (body == NULL)
        len = 0;
    if (len > LLM_STATUS_BODY_MAX) {
        *rc = err_set(err, GENAI_ETOO_LARGE, "reply of %zu bytes is above the %u-byte cap", len,
                      LLM_STATUS_BODY_MAX);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL || !json_is_object(root)) {
        *rc = err_set(err, GENAI_ECORRUPT, "reply is not a JSON object: %s",
                      root == NULL ? je.text : "wrong type");
        json_decref(root);
        return NULL;
    }
    return root;
}

int llm_health_parse(long http_status, const char *body, size_t len, enum llm_health *out,
                     genai_error *err)
{
    if (http_status != 200 && http_status != 503)
        return err_set(err, GENAI_EHTTP, "/health answered HTTP %ld", http_status);
    int rc = 0;
    json_t *root = load(body, len, err, &rc);
    if (root == NULL)
        return http_status == 503 ? err_set(err, GENAI_EHTTP, "/health answered 503") : rc;
    if (http_status == 200) {
        const char *st = json_string_value(json_object_get(root, "status"));
        if (st == NULL || strcmp(st, "ok") != 0) {
            rc = err_set(err, GENAI_ECORRUPT, "/health 200 without \"status\":\"ok\"");
            goto out;
        }
        *out = LLM_HEALTH_OK;
        goto out;
    }
    const char *type = json_string_value(json_object_get(json_object_get(root, "error"), "type"));
    if (type == NULL || strcmp(type, "unavailable_error") != 0) {
        rc = err_set(err, GENAI_EHTTP, "/health answered 503 (%s)",
                     type != NULL ? type : "no error type");
        goto out;
    }
    *out = LLM_HEALTH_LOADING;
out:
    json_decref(root);
    return rc;
}

/* A copy of obj[key] when it is a string, "" when absent; NULL on OOM. */
static char *dup_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return mem_strdup(s != NULL ? s : "");
}

static int get_u32(json_t *v, uint32_t *out)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i > (json_int_t)UINT32_MAX)
        return -1;
    *out = (uint32_t)i;
    return 0;
}

void llm_props_free(llm_props *p)
{
    if (p == NULL)
        return;
    mem_free(p->model_alias);
    mem_free(p->model_path);
    mem_free(p->build_info);
    memset(p, 0, sizeof(*p));
}

int llm_props_parse(const char *body, size_t len, llm_props *out, genai_error *err)
{
    int rc = 0;
    json_t *root = load(body, len, err, &rc);
    if (root == NULL) {
        err_prefix(err, "/props");
        return rc;
    }
    llm_props p;
    memset(&p, 0, sizeof(p));
    json_t *dgs = json_object_get(root, "default_generation_settings");
    if (get_u32(json_object_get(dgs, "n_ctx"), &p.n_ctx_slot) < 0 ||
        get_u32(json_object_get(root, "total_slots"), &p.total_slots) < 0) {
        rc = err_set(err, GENAI_ECORRUPT,
                     "/props lacks total_slots or default_generation_settings.n_ctx");
        goto fail;
    }
    p.model_alias = dup_str(root, "model_alias");
    p.model_path = dup_str(root, "model_path");
    p.build_info = dup_str(root, "build_info");
    if (p.model_alias == NULL || p.model_path == NULL || p.build_info == NULL) {
        rc = err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (llm_build_info_parse(p.build_info, &p.build, NULL) < 0)
        memset(&p.build, 0, sizeof(p.build));
    p.is_sleeping = json_is_true(json_object_get(root, "is_sleeping"));
    json_decref(root);
    *out = p;
    return 0;
fail:
    llm_props_free(&p);
    json_decref(root);
    return rc;
}
