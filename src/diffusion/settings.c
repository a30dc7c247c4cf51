/*
 * settings.c - the per-family settings table, registry overrides and request
 * resolution (see settings.h; values and sources in docs/diffusion-models.md).
 *
 * The table is one row per (family, variant). Overrides are applied to a
 * copy and checked as a whole before the copy replaces the caller's
 * settings, so a bad override changes nothing. Resolution walks the fields
 * in a fixed order (width, height, steps, cfg_scale, guidance, negative
 * prompt); under "strict" the first field out of range is the error.
 */
#include "diffusion/settings.h"

#include "core/error.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define D (1u << DM_COMP_DIFFUSION)
#define V (1u << DM_COMP_VAE)
#define CL (1u << DM_COMP_CLIP_L)
#define CG (1u << DM_COMP_CLIP_G)
#define CH (1u << DM_COMP_OPENCLIP_H)
#define T5 (1u << DM_COMP_T5XXL)

/* family, variant, w, h, side min/max/multiple, steps def/min/max, cfg
 * def/min/max, guidance def/min/max, sampler, scheduler, negative, requires */
static const dm_settings table[] = {
    {DM_FAMILY_SD1,
     DM_VARIANT_BASE,
     512,
     512,
     256,
     1024,
     64,
     20,
     1,
     100,
     7.0,
     1.0,
     30.0,
     0,
     0,
     0,
     "euler_a",
     "discrete",
     1,
     D | CL | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD1,
     DM_VARIANT_LCM,
     512,
     512,
     256,
     1024,
     64,
     4,
     2,
     8,
     1.0,
     1.0,
     2.0,
     0,
     0,
     0,
     "lcm",
     "discrete",
     0,
     D | CL | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD1,
     DM_VARIANT_HYPER,
     512,
     512,
     256,
     1024,
     64,
     8,
     1,
     12,
     1.0,
     1.0,
     8.0,
     0,
     0,
     0,
     "ddim_trailing",
     "discrete",
     0,
     D | CL | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD2,
     DM_VARIANT_BASE,
     768,
     768,
     384,
     1536,
     64,
     20,
     1,
     100,
     7.0,
     1.0,
     30.0,
     0,
     0,
     0,
     "euler_a",
     "discrete",
     1,
     D | CH | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD2,
     DM_VARIANT_TURBO,
     512,
     512,
     384,
     768,
     64,
     1,
     1,
     4,
     1.0,
     1.0,
     1.0,
     0,
     0,
     0,
     "euler_a",
     "discrete",
     0,
     D | CH | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SDXL,
     DM_VARIANT_BASE,
     1024,
     1024,
     512,
     2048,
     64,
     20,
     1,
     100,
     7.0,
     1.0,
     30.0,
     0,
     0,
     0,
     "euler_a",
     "discrete",
     1,
     D | CL | CG | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SDXL,
     DM_VARIANT_LIGHTNING,
     1024,
     1024,
     512,
     2048,
     64,
     4,
     1,
     8,
     1.0,
     1.0,
     1.0,
     0,
     0,
     0,
     "euler",
     "sgm_uniform",
     0,
     D | CL | CG | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SDXL,
     DM_VARIANT_TURBO,
     512,
     512,
     512,
     1024,
     64,
     1,
     1,
     4,
     1.0,
     1.0,
     1.0,
     0,
     0,
     0,
     "euler_a",
     "discrete",
     0,
     D | CL | CG | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SDXL,
     DM_VARIANT_LCM,
     1024,
     1024,
     512,
     2048,
     64,
     4,
     2,
     8,
     1.0,
     1.0,
     2.0,
     0,
     0,
     0,
     "lcm",
     "discrete",
     0,
     D | CL | CG | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SDXL,
     DM_VARIANT_HYPER,
     1024,
     1024,
     512,
     2048,
     64,
     8,
     1,
     12,
     1.0,
     1.0,
     8.0,
     0,
     0,
     0,
     "ddim_trailing",
     "discrete",
     0,
     D | CL | CG | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD3,
     DM_VARIANT_BASE,
     1024,
     1024,
     512,
     2048,
     64,
     28,
     1,
     100,
     4.5,
     1.0,
     30.0,
     0,
     0,
     0,
     "euler",
     "discrete",
     1,
     D | CL | CG | T5 | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_SD3,
     DM_VARIANT_TURBO,
     1024,
     1024,
     512,
     2048,
     64,
     4,
     1,
     8,
     1.0,
     1.0,
     1.0,
     0,
     0,
     0,
     "euler",
     "discrete",
     0,
     D | CL | CG | T5 | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_FLUX,
     DM_VARIANT_BASE,
     1024,
     1024,
     256,
     2048,
     64,
     20,
     1,
     100,
     1.0,
     1.0,
     1.0,
     3.5,
     1.0,
     10.0,
     "euler",
     "discrete",
     0,
     D | CL | T5 | V,
     DM_POLICY_ADJUST},
    {DM_FAMILY_FLUX,
     DM_VARIANT_SCHNELL,
     1024,
     1024,
     256,
     2048,
     64,
     4,
     1,
     4,
     1.0,
     1.0,
     1.0,
     0,
     0,
     0,
     "euler",
     "discrete",
     0,
     D | CL | T5 | V,
     DM_POLICY_ADJUST},
};

static const char *const policy_names[] = {"default", "adjust", "strict"};

const char *dm_policy_name(enum dm_policy p)
{
    return (unsigned)p <= DM_POLICY_STRICT ? policy_names[p] : "unknown";
}

int dm_policy_parse(const char *text, enum dm_policy *out, genai_error *err)
{
    if (text != NULL && strcmp(text, "adjust") == 0) {
        *out = DM_POLICY_ADJUST;
        return 0;
    }
    if (text != NULL && strcmp(text, "strict") == 0) {
        *out = DM_POLICY_STRICT;
        return 0;
    }
    return err_set(err, GENAI_EBAD_ARG, "policy '%.32s': must be adjust or strict",
                   text != NULL ? text : "(null)");
}

int dm_settings_builtin(enum dm_family family, enum dm_variant variant, dm_settings *out,
                        genai_error *err)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].family == family && table[i].variant == variant) {
            *out = table[i];
            return 0;
        }
    }
    return err_set(err, GENAI_ENOT_FOUND, "no settings for %s %s", dm_family_display(family),
                   dm_variant_name(variant));
}

int dm_settings_for_detection(const dm_detection *d, dm_settings *out, genai_error *err)
{
    if (d->family == DM_FAMILY_UNKNOWN)
        return err_set(err, GENAI_ENOT_FOUND, "unknown model family, so no settings: %s",
                       d->evidence);
    dm_settings s;
    int rc = dm_settings_builtin(d->family, d->variant, &s, err);
    if (rc < 0)
        return rc;
    if (d->steps_hint >= s.steps_min && d->steps_hint <= s.steps_max && d->steps_hint != 0)
        s.steps = d->steps_hint;
    *out = s;
    return 0;
}

/* ---- overrides ---- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= DM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '+'))
            return 0;
    }
    return 1;
}

static int get_uint(const json_t *v, const char *key, uint32_t *out, genai_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return err_set(err, GENAI_EBAD_ARG, "settings '%s': expected a non-negative integer", key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int get_num(const json_t *v, const char *key, double *out, genai_error *err)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return err_set(err, GENAI_EBAD_ARG, "settings '%s': expected a number", key);
    *out = json_number_value(v);
    return 0;
}

/* Which member of a range object k names: 0 "default", 1 "min", 2 "max";
 * -1 for anything else. */
static int range_slot(const char *k)
{
    static const char *const names[] = {"default", "min", "max"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(k, names[i]) == 0)
            return i;
    }
    return -1;
}

/* {"default": d, "min": lo, "max": hi}, each optional; unknown keys refused. */
static int get_range_u(const json_t *o, const char *key, uint32_t *def, uint32_t *lo, uint32_t *hi,
                       genai_error *err)
{
    uint32_t *const dst[] = {def, lo, hi};
    if (!json_is_object(o))
        return err_set(err, GENAI_EBAD_ARG, "settings '%s': expected an object", key);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int i = range_slot(k), rc;
        if (i < 0)
            return err_set(err, GENAI_EBAD_ARG, "settings '%s': unknown key '%.64s'", key, k);
        if ((rc = get_uint(v, key, dst[i], err)) < 0)
            return rc;
    }
    return 0;
}

/* The same with numbers (get_num). */
static int get_range_d(const json_t *o, const char *key, double *def, double *lo, double *hi,
                       genai_error *err)
{
    double *const dst[] = {def, lo, hi};
    if (!json_is_object(o))
        return err_set(err, GENAI_EBAD_ARG, "settings '%s': expected an object", key);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int i = range_slot(k), rc;
        if (i < 0)
            return err_set(err, GENAI_EBAD_ARG, "settings '%s': unknown key '%.64s'", key, k);
        if ((rc = get_num(v, key, dst[i], err)) < 0)
            return rc;
    }
    return 0;
}

/* The merged settings as a whole: every range ordered and within the hard
 * limits. */
static int check_settings(const dm_settings *s, genai_error *err)
{
    uint32_t m = s->side_multiple;
    if (m < 8 || m > 1024)
        return err_set(err, GENAI_EBAD_ARG, "settings 'size.multiple' %u: must be 8..1024", m);
    if (s->side_min < DM_SIDE_HARD_MIN || s->side_max > DM_SIDE_HARD_MAX ||
        s->side_min > s->side_max || s->side_min % m != 0 || s->side_max % m != 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'size' %u..%u: must be multiples of %u within %u..%u", s->side_min,
                       s->side_max, m, DM_SIDE_HARD_MIN, DM_SIDE_HARD_MAX);
    if (s->width < s->side_min || s->width > s->side_max || s->width % m != 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'width' %u: must be a multiple of %u in %u..%u", s->width, m,
                       s->side_min, s->side_max);
    if (s->height < s->side_min || s->height > s->side_max || s->height % m != 0)
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'height' %u: must be a multiple of %u in %u..%u", s->height, m,
                       s->side_min, s->side_max);
    if (s->steps_min < 1 || s->steps_max > DM_STEPS_HARD_MAX || s->steps_min > s->steps ||
        s->steps > s->steps_max)
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'steps' %u (%u..%u): need 1 <= min <= default <= max <= %u",
                       s->steps, s->steps_min, s->steps_max, DM_STEPS_HARD_MAX);
    if (!(s->cfg_min >= 0 && s->cfg_min <= s->cfg && s->cfg <= s->cfg_max &&
          s->cfg_max <= DM_CFG_HARD_MAX))
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'cfg' %g (%g..%g): need 0 <= min <= default <= max <= %g", s->cfg,
                       s->cfg_min, s->cfg_max, DM_CFG_HARD_MAX);
    int no_guidance = s->guidance == 0 && s->guidance_min == 0 && s->guidance_max == 0;
    if (!no_guidance && !(s->guidance_min >= 0 && s->guidance_min <= s->guidance &&
                          s->guidance <= s->guidance_max && s->guidance_max <= DM_CFG_HARD_MAX))
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'guidance' %g (%g..%g): need 0 <= min <= default <= max <= %g",
                       s->guidance, s->guidance_min, s->guidance_max, DM_CFG_HARD_MAX);
    if (!name_ok(s->sampler) || !name_ok(s->scheduler))
        return err_set(err, GENAI_EBAD_ARG,
                       "settings 'sampler'/'scheduler': 1..%d characters of a-z, 0-9, _ and +",
                       DM_NAME_MAX - 1);
    return 0;
}

static int set_name(char dst[DM_NAME_MAX], const json_t *v, const char *key, genai_error *err)
{
    if (!json_is_string(v) || !name_ok(json_string_value(v)))
        return err_set(err, GENAI_EBAD_ARG,
                       "settings '%s': expected a name of 1..%d characters of a-z, 0-9, _ and +",
                       key, DM_NAME_MAX - 1);
    snprintf(dst, DM_NAME_MAX, "%s", json_string_value(v));
    return 0;
}

static int apply_key(dm_settings *s, const char *k, const json_t *v, genai_error *err)
{
    if (strcmp(k, "width") == 0)
        return get_uint(v, k, &s->width, err);
    if (strcmp(k, "height") == 0)
        return get_uint(v, k, &s->height, err);
    if (strcmp(k, "size") == 0) {
        if (!json_is_object(v))
            return err_set(err, GENAI_EBAD_ARG, "settings 'size': expected an object");
        const char *sk;
        const json_t *sv;
        json_object_foreach((json_t *)v, sk, sv)
        {
            uint32_t *dst = strcmp(sk, "min") == 0        ? &s->side_min
                            : strcmp(sk, "max") == 0      ? &s->side_max
                            : strcmp(sk, "multiple") == 0 ? &s->side_multiple
                                                          : NULL;
            if (dst == NULL)
                return err_set(err, GENAI_EBAD_ARG, "settings 'size': unknown key '%.64s'", sk);
            int rc = get_uint(sv, "size", dst, err);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (strcmp(k, "steps") == 0)
        return get_range_u(v, k, &s->steps, &s->steps_min, &s->steps_max, err);
    if (strcmp(k, "cfg") == 0)
        return get_range_d(v, k, &s->cfg, &s->cfg_min, &s->cfg_max, err);
    if (strcmp(k, "guidance") == 0) {
        if (json_is_null(v)) {
            s->guidance = s->guidance_min = s->guidance_max = 0;
            return 0;
        }
        return get_range_d(v, k, &s->guidance, &s->guidance_min, &s->guidance_max, err);
    }
    if (strcmp(k, "sampler") == 0)
        return set_name(s->sampler, v, k, err);
    if (strcmp(k, "scheduler") == 0)
        return set_name(s->scheduler, v, k, err);
    if (strcmp(k, "negative_prompt") == 0) {
        if (!json_is_boolean(v))
            return err_set(err, GENAI_EBAD_ARG, "settings 'negative_prompt': expected a boolean");
        s->negative_prompt = json_is_true(v);
        return 0;
    }
    if (strcmp(k, "policy") == 0) {
        if (!json_is_string(v))
            return err_set(err, GENAI_EBAD_ARG, "settings 'policy': expected adjust or strict");
        return dm_policy_parse(json_string_value(v), &s->policy, err);
    }
    /* Printed by dm_settings_to_json, not settable: accepted so that printed
     * settings can be stored back. */
    if (strcmp(k, "family") == 0 || strcmp(k, "family_name") == 0 || strcmp(k, "variant") == 0 ||
        strcmp(k, "requires") == 0)
        return 0;
    return err_set(err, GENAI_EBAD_ARG, "settings: unknown key '%.64s'", k);
}

int dm_settings_override(dm_settings *s, const json_t *override, genai_error *err)
{
    if (override == NULL || json_is_null(override))
        return 0;
    if (!json_is_object(override))
        return err_set(err, GENAI_EBAD_ARG, "settings override: expected a JSON object");
    dm_settings tmp = *s;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *) override, k, v)
    {
        int rc = apply_key(&tmp, k, v, err);
        if (rc < 0)
            return rc;
    }
    int rc = check_settings(&tmp, err);
    if (rc < 0)
        return rc;
    *s = tmp;
    return 0;
}

int dm_settings_override_text(dm_settings *s, const char *json_text, genai_error *err)
{
    if (json_text == NULL || json_text[0] == '\0')
        return 0;
    json_error_t jerr;
    json_t *o = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL)
        return err_set(err, GENAI_EBAD_ARG, "settings override: invalid JSON at %d: %s",
                       jerr.position, jerr.text);
    int rc = dm_settings_override(s, o, err);
    json_decref(o);
    return rc;
}

static json_t *range_u(uint32_t def, uint32_t lo, uint32_t hi)
{
    return json_pack("{s:I,s:I,s:I}", "default", (json_int_t)def, "min", (json_int_t)lo, "max",
                     (json_int_t)hi);
}

static json_t *range_d(double def, double lo, double hi)
{
    return json_pack("{s:f,s:f,s:f}", "default", def, "min", lo, "max", hi);
}

json_t *dm_settings_to_json(const dm_settings *s)
{
    json_t *req = json_array();
    if (req == NULL)
        return NULL;
    for (unsigned c = 0; c < DM_COMP__COUNT; c++) {
        if ((s->requires & (1u << c)) &&
            json_array_append_new(req, json_string(dm_comp_name((enum dm_comp)c))) != 0) {
            json_decref(req);
            return NULL;
        }
    }
    int no_guidance = s->guidance == 0 && s->guidance_min == 0 && s->guidance_max == 0;
    json_t *g = no_guidance ? json_null() : range_d(s->guidance, s->guidance_min, s->guidance_max);
    /* json_pack's "o" steals the references, also on failure. */
    return json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:{s:I,s:I,s:I},s:o,s:o,s:o,s:s,s:s,s:b,s:o,s:s}", "family",
        dm_family_name(s->family), "family_name", dm_family_display(s->family), "variant",
        dm_variant_name(s->variant), "width", (json_int_t)s->width, "height", (json_int_t)s->height,
        "size", "min", (json_int_t)s->side_min, "max", (json_int_t)s->side_max, "multiple",
        (json_int_t)s->side_multiple, "steps", range_u(s->steps, s->steps_min, s->steps_max), "cfg",
        range_d(s->cfg, s->cfg_min, s->cfg_max), "guidance", g, "sampler", s->sampler, "scheduler",
        s->scheduler, "negative_prompt", s->negative_prompt, "requires", req, "policy",
        dm_policy_name(s->policy));
}

/* ---- request resolution ---- */

struct ctx {
    const dm_settings *s;
    dm_resolved *r;
    genai_error *err;
    char model[64]; /* "SDXL Lightning" */
};

static void warn(struct ctx *c, const char *field, const char *fmt, ...) GX_PRINTF(3, 4);
static void warn(struct ctx *c, const char *field, const char *fmt, ...)
{
    if (c->r->n_warnings >= DM_WARN_MAX)
        return;
    dm_warning *w = &c->r->warnings[c->r->n_warnings++];
    w->field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->message, sizeof(w->message), fmt, ap);
    va_end(ap);
}

static uint32_t round_up(uint32_t v, uint32_t m)
{
    uint64_t r = ((uint64_t)v + m - 1) / m * m;
    return r > UINT32_MAX ? UINT32_MAX / m * m : (uint32_t)r;
}

static int resolve_side(struct ctx *c, const char *field, unsigned bit, uint32_t asked,
                        uint32_t native, uint32_t *out)
{
    const dm_settings *s = c->s;
    if (asked == 0) {
        *out = native;
        c->r->defaulted |= bit;
        return 0;
    }
    if (asked >= s->side_min && asked <= s->side_max && asked % s->side_multiple == 0) {
        *out = asked;
        return 0;
    }
    if (c->r->policy == DM_POLICY_STRICT)
        return err_set(c->err, GENAI_EBAD_ARG,
                       "%s %u: %s supports multiples of %u in %u..%u (native %u)", field, asked,
                       c->model, s->side_multiple, s->side_min, s->side_max, native);
    uint32_t v = round_up(asked, s->side_multiple);
    if (v < s->side_min)
        v = s->side_min;
    if (v > s->side_max)
        v = s->side_max;
    *out = v;
    c->r->adjusted |= bit;
    warn(c, field, "%s %u adjusted to %u: %s supports multiples of %u in %u..%u (native %u)", field,
         asked, v, c->model, s->side_multiple, s->side_min, s->side_max, native);
    return 0;
}

static int resolve_steps(struct ctx *c, uint32_t asked)
{
    const dm_settings *s = c->s;
    if (asked == 0) {
        c->r->steps = s->steps;
        c->r->defaulted |= DM_FIELD_STEPS;
        return 0;
    }
    if (asked >= s->steps_min && asked <= s->steps_max) {
        c->r->steps = asked;
        return 0;
    }
    if (c->r->policy == DM_POLICY_STRICT)
        return err_set(c->err, GENAI_EBAD_ARG, "steps %u: %s supports %u..%u (default %u)", asked,
                       c->model, s->steps_min, s->steps_max, s->steps);
    c->r->steps = asked < s->steps_min ? s->steps_min : s->steps_max;
    c->r->adjusted |= DM_FIELD_STEPS;
    warn(c, "steps", "steps %u adjusted to %u: %s supports %u..%u (default %u)", asked, c->r->steps,
         c->model, s->steps_min, s->steps_max, s->steps);
    return 0;
}

/* cfg_scale or guidance: a number in lo..hi. */
static int resolve_num(struct ctx *c, const char *field, unsigned bit, int given, double asked,
                       double def, double lo, double hi, double *out)
{
    if (!given) {
        *out = def;
        c->r->defaulted |= bit;
        return 0;
    }
    if (isfinite(asked) && asked >= lo && asked <= hi) {
        *out = asked;
        return 0;
    }
    if (c->r->policy == DM_POLICY_STRICT)
        return err_set(c->err, GENAI_EBAD_ARG, "%s %g: %s supports %g..%g (default %g)", field,
                       asked, c->model, lo, hi, def);
    *out = !isfinite(asked) ? def : asked < lo ? lo : hi;
    c->r->adjusted |= bit;
    warn(c, field, "%s %g adjusted to %g: %s supports %g..%g (default %g)", field, asked, *out,
         c->model, lo, hi, def);
    return 0;
}

static int resolve_guidance(struct ctx *c, const dm_request *req)
{
    const dm_settings *s = c->s;
    int none = s->guidance == 0 && s->guidance_min == 0 && s->guidance_max == 0;
    if (none) {
        if (!req->has_guidance)
            return 0;
        if (c->r->policy == DM_POLICY_STRICT)
            return err_set(c->err, GENAI_EBAD_ARG,
                           "guidance %g: %s has no distilled-guidance input", req->guidance,
                           c->model);
        c->r->adjusted |= DM_FIELD_GUIDANCE;
        warn(c, "guidance", "guidance %g ignored: %s has no distilled-guidance input",
             req->guidance, c->model);
        return 0;
    }
    c->r->use_guidance = 1;
    return resolve_num(c, "guidance", DM_FIELD_GUIDANCE, req->has_guidance, req->guidance,
                       s->guidance, s->guidance_min, s->guidance_max, &c->r->guidance);
}

static int resolve_negative(struct ctx *c, const dm_request *req)
{
    if (req->negative_prompt == NULL || req->negative_prompt[0] == '\0')
        return 0;
    /* stable-diffusion.cpp skips the unconditional pass at cfg-scale 1, and
     * the negative prompt only enters through that pass. */
    if (c->r->cfg != 1.0) {
        c->r->use_negative = 1;
        return 0;
    }
    if (!c->s->negative_prompt && c->r->policy == DM_POLICY_STRICT)
        return err_set(c->err, GENAI_EBAD_ARG,
                       "negative_prompt: %s runs without classifier-free guidance (cfg_scale 1), "
                       "so a negative prompt has no effect",
                       c->model);
    c->r->adjusted |= DM_FIELD_NEGATIVE;
    warn(c, "negative_prompt", "negative_prompt ignored: it has no effect at cfg_scale 1%s",
         c->s->negative_prompt ? "" : " (the model runs without classifier-free guidance)");
    return 0;
}

int dm_resolve(const dm_settings *s, const dm_request *req, dm_resolved *out, genai_error *err)
{
    if (s == NULL || req == NULL || out == NULL)
        return err_set(err, GENAI_EBAD_ARG, "dm_resolve: NULL argument");
    dm_resolved r;
    memset(&r, 0, sizeof(r));
    r.policy = req->policy != DM_POLICY_DEFAULT ? req->policy : s->policy;
    if (r.policy != DM_POLICY_STRICT)
        r.policy = DM_POLICY_ADJUST;
    struct ctx c = {.s = s, .r = &r, .err = err};
    if (s->variant == DM_VARIANT_BASE)
        snprintf(c.model, sizeof(c.model), "%s", dm_family_display(s->family));
    else
        snprintf(c.model, sizeof(c.model), "%s %c%s", dm_family_display(s->family),
                 dm_variant_name(s->variant)[0] - 'a' + 'A', dm_variant_name(s->variant) + 1);
    int rc;
    if ((rc = resolve_side(&c, "width", DM_FIELD_WIDTH, req->width, s->width, &r.width)) < 0 ||
        (rc = resolve_side(&c, "height", DM_FIELD_HEIGHT, req->height, s->height, &r.height)) < 0 ||
        (rc = resolve_steps(&c, req->steps)) < 0 ||
        (rc = resolve_num(&c, "cfg_scale", DM_FIELD_CFG, req->has_cfg, req->cfg, s->cfg, s->cfg_min,
                          s->cfg_max, &r.cfg)) < 0 ||
        (rc = resolve_guidance(&c, req)) < 0 || (rc = resolve_negative(&c, req)) < 0)
        return rc;
    if (req->sampler != NULL && req->sampler[0] != '\0') {
        if (strlen(req->sampler) >= DM_NAME_MAX)
            return err_set(err, GENAI_EBAD_ARG, "sampler: name longer than %d", DM_NAME_MAX - 1);
        snprintf(r.sampler, sizeof(r.sampler), "%s", req->sampler);
    } else {
        snprintf(r.sampler, sizeof(r.sampler), "%s", s->sampler);
        r.defaulted |= DM_FIELD_SAMPLER;
    }
    if (req->scheduler != NULL && req->scheduler[0] != '\0') {
        if (strlen(req->scheduler) >= DM_NAME_MAX)
            return err_set(err, GENAI_EBAD_ARG, "scheduler: name longer than %d", DM_NAME_MAX - 1);
        snprintf(r.scheduler, sizeof(r.scheduler), "%s", req->scheduler);
    } else {
        snprintf(r.scheduler, sizeof(r.scheduler), "%s", s->scheduler);
        r.defaulted |= DM_FIELD_SCHEDULER;
    }
    *out = r;
    return 0;
}

json_t *dm_resolved_to_json(const dm_resolved *r)
{
    static const char *const names[] = {"width",    "height",  "steps",     "cfg_scale",
                                        "guidance", "sampler", "scheduler", "negative_prompt"};
    json_t *warns = json_array();
    json_t *def = json_array();
    if (warns == NULL || def == NULL)
        goto fail;
    for (size_t i = 0; i < r->n_warnings; i++) {
        if (json_array_append_new(warns, json_pack("{s:s,s:s}", "field", r->warnings[i].field,
                                                   "message", r->warnings[i].message)) != 0)
            goto fail;
    }
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((r->defaulted & (1u << i)) && json_array_append_new(def, json_string(names[i])) != 0)
            goto fail;
    }
    return json_pack("{s:I,s:I,s:I,s:f,s:o,s:s,s:s,s:b,s:s,s:o,s:o}", "width", (json_int_t)r->width,
                     "height", (json_int_t)r->height, "steps", (json_int_t)r->steps, "cfg_scale",
                     r->cfg, "guidance", r->use_guidance ? json_real(r->guidance) : json_null(),
                     "sampler", r->sampler, "scheduler", r->scheduler, "negative_prompt",
                     r->use_negative, "policy", dm_policy_name(r->policy), "defaulted", def,
                     "warnings", warns);
fail:
    json_decref(warns);
    json_decref(def);
    return NULL;
}
