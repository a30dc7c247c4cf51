/*
 * cmd_settings.c - `genai settings ID [KEY=VALUE ...] [--reset]
 * [--policy adjust|strict] [--json]`: shows or changes the generation
 * settings of a registered diffusion model.
 *
 * A model's settings are the built-in row for its family and variant
 * (docs/diffusion-models.md) with the registry's override merged on top.
 * Each KEY=VALUE edits the override (an object of the shape
 * dm_settings_to_json prints); --reset drops it first. The edited override
 * is checked against the model's built-in row before it is stored
 * (store_set_settings), so a refused change names the key and the allowed
 * range, and nothing is stored. Without edits the command prints the
 * effective settings.
 *
 * Keys: size=WxH, width, height, size.min, size.max, size.multiple, steps,
 * steps.min, steps.max, cfg, cfg.min, cfg.max, guidance (a number, or
 * "none" for a model without distilled guidance), guidance.min,
 * guidance.max, sampler, scheduler, negative_prompt (true/false), policy.
 */
#include "cli.h"
#include "api/shapes.h"

#include "core/alloc.h"
#include "image/request.h"
#include "store/dmodel.h"
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "settings"
#define MAX_EDITS 32

static void usage(FILE *out)
{
    fprintf(out, "Usage: genai settings ID [KEY=VALUE ...] [--reset] [--policy adjust|strict]\n"
                 "                         [--json]\n\n"
                 "Shows the generation settings genai applies to a registered diffusion model\n"
                 "(the built-in ones for its family, merged with this model's override), or\n"
                 "changes the override. Requests that leave a setting out get the default;\n"
                 "values outside a range are adjusted with a warning (policy adjust, the\n"
                 "default) or refused (policy strict).\n\n"
                 "Keys:\n"
                 "  size=WxH, width=N, height=N   native size (multiples of size.multiple)\n"
                 "  size.min=N, size.max=N, size.multiple=N   allowed sides\n"
                 "  steps=N, steps.min=N, steps.max=N          default and range (1..100)\n"
                 "  cfg=X, cfg.min=X, cfg.max=X                cfg-scale (0..30)\n"
                 "  guidance=X|none, guidance.min=X, guidance.max=X   distilled guidance\n"
                 "  sampler=NAME, scheduler=NAME               e.g. euler, sgm_uniform\n"
                 "  negative_prompt=true|false                 whether it has an effect\n"
                 "  policy=adjust|strict                       (same as --policy)\n\n"
                 "  --reset   forget the override first (alone: back to the built-in)\n"
                 "  --json    print the result as JSON\n");
}

enum vkind { V_UINT, V_NUM, V_NAME, V_BOOL, V_POLICY };

static const struct key {
    const char *key;   /* as typed */
    const char *outer; /* override member */
    const char *inner; /* member of outer, or NULL */
    enum vkind kind;
} keys[] = {
    {"width", "width", NULL, V_UINT},
    {"height", "height", NULL, V_UINT},
    {"size.min", "size", "min", V_UINT},
    {"size.max", "size", "max", V_UINT},
    {"size.multiple", "size", "multiple", V_UINT},
    {"steps", "steps", "default", V_UINT},
    {"steps.min", "steps", "min", V_UINT},
    {"steps.max", "steps", "max", V_UINT},
    {"cfg", "cfg", "default", V_NUM},
    {"cfg.min", "cfg", "min", V_NUM},
    {"cfg.max", "cfg", "max", V_NUM},
    {"guidance", "guidance", "default", V_NUM},
    {"guidance.min", "guidance", "min", V_NUM},
    {"guidance.max", "guidance", "max", V_NUM},
    {"sampler", "sampler", NULL, V_NAME},
    {"scheduler", "scheduler", NULL, V_NAME},
    {"negative_prompt", "negative_prompt", NULL, V_BOOL},
    {"policy", "policy", NULL, V_POLICY},
};

static int parse_uint(const char *v, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n > 1000000)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

/* Sets outer (or outer.inner) in ovr to val (stolen). */
static int put(json_t *ovr, const struct key *k, json_t *val)
{
    if (val == NULL)
        return -1;
    if (k->inner == NULL)
        return json_object_set_new(ovr, k->outer, val);
    json_t *o = json_object_get(ovr, k->outer);
    if (!json_is_object(o)) { /* absent, or null (guidance none) */
        o = json_object();
        if (o == NULL || json_object_set_new(ovr, k->outer, o) != 0) {
            json_decref(val);
            return -1;
        }
    }
    return json_object_set_new(o, k->inner, val);
}

/* Applies one KEY=VALUE to the override; a usage error names the key. */
static int apply_edit(json_t *ovr, const char *edit)
{
    const char *eq = strchr(edit, '=');
    if (eq == NULL || eq == edit)
        return cli_usage_error(CMD, "'%s': expected KEY=VALUE", edit);
    size_t klen = (size_t)(eq - edit);
    const char *v = eq + 1;
    if (klen == 4 && strncmp(edit, "size", 4) == 0) {
        uint32_t w, h;
        const char *x = strchr(v, 'x');
        char wbuf[16];
        if (x == NULL || (size_t)(x - v) >= sizeof(wbuf))
            return cli_usage_error(CMD, "size: expected WxH, e.g. 1024x1024, not '%s'", v);
        memcpy(wbuf, v, (size_t)(x - v));
        wbuf[x - v] = '\0';
        if (parse_uint(wbuf, &w) < 0 || parse_uint(x + 1, &h) < 0)
            return cli_usage_error(CMD, "size: expected WxH, e.g. 1024x1024, not '%s'", v);
        if (put(ovr, &keys[0], json_integer(w)) != 0 || put(ovr, &keys[1], json_integer(h)) != 0)
            return CLI_FAIL;
        return 0;
    }
    const struct key *k = NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strlen(keys[i].key) == klen && strncmp(keys[i].key, edit, klen) == 0)
            k = &keys[i];
    }
    if (k == NULL)
        return cli_usage_error(CMD, "unknown key '%.*s' (see 'genai settings --help')", (int)klen,
                               edit);
    json_t *val = NULL;
    uint32_t u;
    switch (k->kind) {
    case V_UINT:
        if (parse_uint(v, &u) < 0)
            return cli_usage_error(CMD, "%s: expected a whole number, not '%s'", k->key, v);
        val = json_integer(u);
        break;
    case V_NUM: {
        if (strcmp(k->key, "guidance") == 0 && strcmp(v, "none") == 0)
            return json_object_set_new(ovr, "guidance", json_null()) == 0 ? 0 : CLI_FAIL;
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
            return cli_usage_error(CMD, "%s: expected a number, not '%s'", k->key, v);
        val = json_real(d);
        break;
    }
    case V_NAME:
        if (strcmp(k->key, "sampler") == 0 ? !img_sampler_known(v) : !img_scheduler_known(v))
            return cli_usage_error(CMD, "%s: '%s' is not one of stable-diffusion.cpp's %ss", k->key,
                                   v, k->key);
        val = json_string(v);
        break;
    case V_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            return cli_usage_error(CMD, "%s: expected true or false, not '%s'", k->key, v);
        val = json_boolean(strcmp(v, "true") == 0);
        break;
    case V_POLICY: {
        enum dm_policy p;
        if (dm_policy_parse(v, &p, NULL) < 0)
            return cli_usage_error(CMD, "policy: expected adjust or strict, not '%s'", v);
        val = json_string(v);
        break;
    }
    }
    return put(ovr, k, val) == 0 ? 0 : CLI_FAIL;
}

static int print_result(const store_model *m, int json)
{
    if (json) {
        json_t *o = api_model_json(m);
        json_t *out = o != NULL ? json_pack("{s:s, s:O, s:O, s:O}", "id", m->id, "settings",
                                            json_object_get(o, "settings"), "settings_override",
                                            json_object_get(o, "settings_override"), "detection",
                                            json_object_get(o, "detection"))
                                : NULL;
        json_decref(o);
        return cli_print_json(stdout, out);
    }
    printf("id:        %s\n", m->id);
    cli_print_dm(stdout, m);
    return CLI_OK;
}

int cmd_settings(int argc, char **argv)
{
    const char *id = NULL, *policy = NULL;
    const char *edits[MAX_EDITS];
    size_t n_edits = 0;
    int json = 0, reset = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--reset") == 0) {
            reset = 1;
        } else if (strcmp(argv[i], "--policy") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "--policy needs adjust or strict");
            policy = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_usage_error(CMD, "unknown flag '%s'", argv[i]);
        } else if (id == NULL) {
            id = argv[i];
        } else if (n_edits == MAX_EDITS) {
            return cli_usage_error(CMD, "at most %d changes at a time", MAX_EDITS);
        } else {
            edits[n_edits++] = argv[i];
        }
    }
    if (id == NULL)
        return cli_usage_error(CMD, "which model? (see 'genai list')");

    store *s = NULL;
    store_model m;
    memset(&m, 0, sizeof(m));
    json_t *ovr = NULL;
    char *text = NULL;
    genai_error e;
    genai_error_clear(&e);
    int status = CLI_FAIL;
    int rc = store_open(&s, &e);
    if (rc == 0)
        rc = store_db_get_model(store_registry(s), id, &m, &e);
    if (rc < 0)
        goto fail;
    if (m.kind != STORE_KIND_DIFFUSION) {
        rc = err_set(&e, GENAI_EBAD_ARG, "%s is an LLM: settings are for diffusion models", id);
        goto fail;
    }
    if (n_edits == 0 && policy == NULL && !reset) {
        status = print_result(&m, json);
        goto out;
    }
    ovr = !reset && m.settings_json != NULL ? json_loads(m.settings_json, 0, NULL) : json_object();
    if (!json_is_object(ovr)) {
        json_decref(ovr);
        ovr = json_object();
    }
    if (ovr == NULL) {
        rc = err_set(&e, -ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_edits; i++) {
        if ((status = apply_edit(ovr, edits[i])) != 0)
            goto out;
    }
    if (policy != NULL) {
        char edit[64];
        snprintf(edit, sizeof(edit), "policy=%s", policy);
        if ((status = apply_edit(ovr, edit)) != 0)
            goto out;
    }
    status = CLI_FAIL;
    if (json_object_size(ovr) > 0) {
        char *t = json_dumps(ovr, JSON_COMPACT | JSON_PRESERVE_ORDER);
        text = t != NULL ? mem_strdup(t) : NULL;
        free(t); /* jansson's allocator */
        if (text == NULL) {
            rc = err_set(&e, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    /* Checked against the model's built-in row; refused changes store nothing. */
    if ((rc = store_set_settings(s, id, text, &e)) < 0)
        goto fail;
    store_model_free(&m);
    if ((rc = store_db_get_model(store_registry(s), id, &m, &e)) < 0)
        goto fail;
    status = print_result(&m, json);
    goto out;
fail:
    cli_report(CMD, rc, &e);
    if (rc == GENAI_EBAD_ARG && n_edits > 0)
        fprintf(stderr, "A default must lie in its range: to go past a bound, change it too "
                        "(e.g. steps.max=12 steps=12). Nothing was changed.\n");
    status = CLI_FAIL;
out:
    mem_free(text);
    json_decref(ovr);
    store_model_free(&m);
    store_close(s);
    return status;
}
